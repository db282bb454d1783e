/**
 * The token inspector page (packages/cli/inspector/, written by `allowance inspect --html`): its
 * generated module is current, its script is the portable build with no Node module, and in
 * headless Chromium (Debian's package) it draws chains, verifies them against pasted roots — the
 * spec vectors included — and sends nothing anywhere. In CI a missing Chromium fails the run;
 * elsewhere the browser tests are skipped, and their name says why.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  attenuate,
  exportJwks,
  exportPrivateJwk,
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  linkIds,
  mint,
  publicKeyOf,
  type KeyPair,
} from "@allowance/core";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vector } from "../../../scripts/vectors.js";
import {
  INSPECTOR_MODULE_PATH,
  buildInspector,
  renderInspectorModule,
} from "../../../scripts/inspector.js";
import { inspectorPageFor } from "../src/commands/inspect.js";
import { UsageError } from "../src/errors.js";
import { inspectorPage } from "../src/inspector.js";
import { INSPECTOR_PAGE } from "../src/inspector-html.js";
import { Browser, chromiumMissing, type Page } from "./chromium.js";
import { allowance, expectFailure, expectSuccess } from "./support.js";

const root = join(import.meta.dirname, "..", "..", "..");
const ci = process.env.CI === "true";

/** Where the screenshots go (overwritten by each run), for a person to look at. */
const SCREENSHOTS = join(tmpdir(), "allowance-inspector");

describe("the inspector page's generated module", () => {
  const build = buildInspector();

  it("is exactly what scripts/inspector.ts builds from packages/cli/inspector/ (the build writes it: run `npm run build` after changing the page or any source it bundles)", () => {
    expect(readFileSync(INSPECTOR_MODULE_PATH, "utf8")).toBe(renderInspectorModule(build));
  });

  it("bundles core and the verifier from the portable platform, with no Node module, in under 100 kB", () => {
    expect(build.inputs).toContain("packages/core/src/platform/portable.ts");
    expect(build.inputs).toContain("packages/verifier/src/verify.ts");
    expect(build.inputs.some((path) => path.includes("@noble/ed25519"))).toBe(true);
    expect(
      build.inputs.filter((path) => path.startsWith("node:") || path.includes("platform/node")),
    ).toEqual([]);
    const script = scriptOf(INSPECTOR_PAGE.afterToken);
    expect(script).not.toMatch(/\bBuffer\b|\bnode:|\brequire\(/);
    expect(build.scriptBytes).toBeLessThan(100_000);
  });

  it("loads nothing: one inline script and one inline style, allowed by their hashes under default-src 'none'", () => {
    const html = INSPECTOR_PAGE.beforeToken + INSPECTOR_PAGE.afterToken;
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html.match(/<style\b/g)).toHaveLength(1);
    expect(html).not.toMatch(/\b(?:src|href|action)\s*=|<link\b|<iframe\b|<object\b|<embed\b/i);
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1];
    // A digest of the exact element text, as the browser computes it (CSP Level 3 §8.4).
    const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
    expect(csp?.split("; ")).toEqual([
      "default-src 'none'",
      `script-src ${hash(scriptOf(html))}`,
      `style-src ${hash(/<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? "")}`,
      "base-uri 'none'",
      "form-action 'none'",
    ]);
    // The CSP comes before the script and style it governs.
    expect(html.indexOf("Content-Security-Policy")).toBeLessThan(html.indexOf("<style>"));
  });

  it("type-checks as browser code (DOM) against the packages' source", () => {
    const path = join(root, "packages/cli/inspector/tsconfig.json");
    const config = ts.getParsedCommandLineOfConfigFile(
      path,
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
        },
      },
    );
    expect(config?.errors ?? ["no config"]).toEqual([]);
    const program = ts.createProgram({
      rootNames: config?.fileNames ?? [],
      options: config?.options ?? {},
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(diagnostics).toEqual([]);
  }, 120_000);
});

describe("allowance inspect --html (from source)", () => {
  it("writes the page with no token, or with the given token as the token field's text", async () => {
    const token = await threeLinks();
    expect(await inspectorPageFor(undefined, {})).toBe(inspectorPage());
    const page = await inspectorPageFor(token.text, {});
    expect(page).toBe(INSPECTOR_PAGE.beforeToken + token.text + INSPECTOR_PAGE.afterToken);
    expect(page).toMatch(/<textarea id="token"[^>]*>alw1_[A-Za-z0-9_-]+<\/textarea>/);
  });

  it("escapes markup in the token text, so nothing can close the textarea", () => {
    const page = inspectorPage(`</textarea><script>alert(1)</script>&"'`);
    expect(page).toContain(
      "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;</textarea>",
    );
    expect(page.match(/<script\b/g)).toHaveLength(1);
    expect(() => inspectorPage(42 as unknown as string)).toThrow(TypeError);
  });

  it("refuses a malformed token, --json, and a file name where the token goes (usage errors)", async () => {
    await expect(inspectorPageFor("alw1_zzzz", {})).rejects.toThrow(UsageError);
    await expect(inspectorPageFor("alw1_zzzz", {})).rejects.toThrow(/token is malformed/);
    await expect(inspectorPageFor("hello", {})).rejects.toThrow(/not an Allowance token/);
    await expect(inspectorPageFor(undefined, { json: true })).rejects.toThrow(
      /--html and --json cannot be combined/,
    );
    await expect(inspectorPageFor("inspector.html", {})).rejects.toThrow(
      /redirect it: allowance inspect --html > inspector\.html/,
    );
  });
});

describe("allowance inspect --html (the built CLI)", () => {
  it("writes the page on stdout, the token filled in when given; refuses --json and no token without --html", async () => {
    const { text } = await threeLinks();
    const empty = allowance(["inspect", "--html"]);
    expectSuccess(empty);
    expect(empty.stdout).toBe(inspectorPage());
    const filled = allowance(["inspect", "--html", "-"], { input: `${text}\n` });
    expectSuccess(filled);
    expect(filled.stdout).toBe(inspectorPage(text));
    expectFailure(allowance(["inspect", "--html", "--json"]), 2, /cannot be combined/);
    expectFailure(allowance(["inspect", "--html", "alw1_zzzz"]), 2, /token is malformed/);
    expectFailure(allowance(["inspect"]), 2, /missing required argument 'token'/);
  });
});

// ---------------------------------------------------------------------------------------------
// In the browser.

interface Drawn {
  readonly verdict: string | null;
  readonly code: string | null;
  readonly linkIndex: number | null;
  readonly message: string;
  readonly rootKid: string | null;
  readonly images: number;
  readonly links: readonly {
    readonly index: number;
    readonly depth: number;
    readonly marks: readonly string[];
    readonly id: string | null;
    readonly signer: string | null;
    readonly holder: string | null;
    readonly label: string | null;
    readonly grant: readonly string[];
    readonly narrowed: readonly { field: string; from: string | null; to: string | null }[];
    readonly violations: string | null;
  }[];
}

/** What the page shows, read from its DOM once it has drawn. */
const READ_DOM = `(() => {
  const text = (node) => (node === null ? null : node.textContent);
  const verdict = document.getElementById("verdict");
  const depth = (li) => {
    let n = 0;
    for (let up = li.parentElement.closest("li.link"); up !== null; up = up.parentElement.closest("li.link")) n++;
    return n;
  };
  return {
    verdict: verdict.dataset.verdict ?? null,
    code: verdict.dataset.code ?? null,
    linkIndex: verdict.dataset.linkIndex === undefined ? null : Number(verdict.dataset.linkIndex),
    message: verdict.textContent,
    rootKid: text(document.querySelector("#chain .root-kid")),
    images: document.images.length,
    links: [...document.querySelectorAll("#chain li.link")].map((li) => {
      const card = li.querySelector(":scope > .card");
      return {
        index: Number(li.dataset.index),
        depth: depth(li),
        marks: ["checked", "failed", "wider"].filter((mark) => li.classList.contains(mark)),
        id: text(card.querySelector(".link-id")),
        signer: text(card.querySelector(".signer")),
        holder: text(card.querySelector(".holder")),
        label: text(card.querySelector("h2 .label")),
        grant: [...card.querySelectorAll(".grant li")].map((li) => li.textContent),
        narrowed: [...card.querySelectorAll(".narrowed tr")].map((tr) => ({
          field: tr.dataset.field,
          from: text(tr.querySelector(".from")),
          to: text(tr.querySelector(".to")),
        })),
        violations: text(card.querySelector(".violations")),
      };
    }),
  };
})()`;

const DRAWN = `document.getElementById("chain").getAttribute("aria-busy") === "false"`;

async function read(page: Page): Promise<Drawn> {
  await page.waitFor(DRAWN);
  return page.evaluate<Drawn>(READ_DOM);
}

/** Sets the fields as a person would (an input event per field) and waits for the drawing. */
async function fill(page: Page, fields: { token?: string; roots?: string; at?: string }) {
  await page.evaluate(`(() => {
    for (const [id, value] of Object.entries(${JSON.stringify(fields)})) {
      const field = document.getElementById(id);
      field.value = value;
      field.dispatchEvent(new Event("input"));
    }
  })()`);
  return read(page);
}

const reason = chromiumMissing();

describe("the inspector page in headless Chromium", () => {
  if (reason !== undefined && !ci) {
    it.skip(`skipped: ${reason}`, () => {});
    return;
  }

  let browser: Browser;
  let dir: string;
  let pageUrl: string;
  let story: Awaited<ReturnType<typeof threeLinks>>;
  const opened: Page[] = [];

  beforeAll(async () => {
    expect(reason, "CI must run the inspector page in Chromium").toBeUndefined();
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
    dir = join(SCREENSHOTS, "pages");
    mkdirSync(dir);
    writeFileSync(join(dir, "inspector.html"), inspectorPage());
    pageUrl = pathToFileURL(join(dir, "inspector.html")).href;
    story = await threeLinks();
    browser = await Browser.launch();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    // Nothing on any page threw or logged an error (the CSP tests' pages are checked there).
    for (const page of opened) {
      expect(page.events.exceptions).toEqual([]);
      expect(page.events.errors).toEqual([]);
    }
  }, 30_000);

  const open = async (fragment: Record<string, string> = {}, url = pageUrl) => {
    const hash = new URLSearchParams(fragment).toString();
    const page = await browser.open(hash === "" ? url : `${url}#${hash}`);
    opened.push(page);
    return page;
  };
  const shoot = async (page: Page, name: string) => {
    const png = await page.screenshot();
    // A PNG (signature, then an IHDR chunk) of the whole page.
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(png.readUInt32BE(16)).toBeGreaterThan(900);
    expect(png.readUInt32BE(20)).toBeGreaterThan(300);
    writeFileSync(join(SCREENSHOTS, `${name}.png`), png);
  };

  it("draws a three-link chain from the URL fragment as a tree, verified against the right roots", async () => {
    const page = await open({ token: story.text, roots: JSON.stringify(exportJwks([story.root])) });
    const drawn = await read(page);
    expect(drawn.verdict).toBe("valid");
    expect(drawn.message).toMatch(/^Valid: 3 links from a trusted root\./);
    expect(drawn.rootKid).toBe(story.root.kid);
    expect(drawn.links).toHaveLength(3);
    const ids = linkIds(story.token);
    const [orch, researcher, summarizer] = story.holders;
    expect(drawn.links.map((l) => [l.index, l.depth, l.id, l.signer, l.holder, l.marks])).toEqual([
      [0, 0, ids[0], story.root.kid, orch.kid, ["checked"]],
      [1, 1, ids[1], orch.kid, researcher.kid, ["checked"]],
      [2, 2, ids[2], researcher.kid, summarizer.kid, ["checked"]],
    ]);
    expect(drawn.links[0]?.grant).toEqual([
      `expires ${instant(story.exp)}`,
      "tokens 1M",
      "usd $50",
      "providers openai, anthropic:usd=20",
      "tools search.*, send_email",
    ]);
    expect(drawn.links[0]?.narrowed).toEqual([]);
    expect(drawn.links[1]?.label).toBe("researcher");
    expect(drawn.links[1]?.narrowed).toEqual([
      { field: "usd", from: "$50", to: "$10" },
      { field: "tools", from: "search.*, send_email", to: "search.*" },
    ]);
    expect(drawn.links[2]?.narrowed).toEqual([
      { field: "exp", from: instant(story.exp), to: instant(story.exp - 1800) },
      { field: "usd", from: "$10", to: "$2.50" },
      { field: "providers", from: "openai, anthropic:usd=20", to: "anthropic:usd=1" },
      { field: "tools", from: "search.*", to: "search.web" },
    ]);
    expect(drawn.links.map((l) => l.violations)).toEqual([null, null, null]);
    await shoot(page, "valid");
  });

  it("says invalid (ERR_UNKNOWN_ROOT at link 0) against other roots, and still draws the chain", async () => {
    const other = await generateKeyPair();
    const page = await open({ token: story.text, roots: JSON.stringify(exportPublicJwk(other)) });
    const drawn = await read(page);
    expect([drawn.verdict, drawn.code, drawn.linkIndex]).toEqual([
      "invalid",
      "ERR_UNKNOWN_ROOT",
      0,
    ]);
    expect(drawn.links).toHaveLength(3);
    expect(drawn.links.map((l) => l.marks)).toEqual([["failed"], [], []]);
    await shoot(page, "unknown-root");
  });

  it("says the signatures are NOT checked when no roots are given", async () => {
    const drawn = await read(await open({ token: story.text }));
    expect(drawn.verdict).toBe("unchecked");
    expect(drawn.message).toMatch(/^Signatures NOT checked\./);
    expect(drawn.links.map((l) => l.marks)).toEqual([[], [], []]);
  });

  it("marks the link the verifier refused: a widened link (vector invalid-widened-usd) at link 3", async () => {
    const vector = readVector("invalid-widened-usd");
    const page = await open({
      token: vector.token,
      roots: JSON.stringify(vector.roots),
      at: String(vector.now),
    });
    const drawn = await read(page);
    expect([drawn.verdict, drawn.code, drawn.linkIndex]).toEqual(["invalid", "ERR_WIDENED", 3]);
    expect(drawn.links).toHaveLength(4);
    expect(drawn.links[3]?.marks).toEqual(["failed", "wider"]);
    expect(drawn.links[3]?.violations).toMatch(/^Wider than its parent: usd: asks \$/);
    await shoot(page, "widened");
  });

  it("shows a malformed token's typed error code and no chain", async () => {
    const page = await open({ token: "alw1_zzzz" });
    const drawn = await read(page);
    expect([drawn.verdict, drawn.code]).toEqual(["malformed", "ERR_MALFORMED"]);
    expect(drawn.message).toMatch(/^Malformed token: ERR_MALFORMED/);
    expect(drawn.links).toEqual([]);
    await shoot(page, "malformed");
    // One character changed inside the last link's signature (its R half): with the roots, the
    // verifier refuses that link's signature.
    const at = story.text.length - 70;
    const tampered =
      story.text.slice(0, at) + (story.text[at] === "A" ? "B" : "A") + story.text.slice(at + 1);
    const again = await fill(page, {
      token: tampered,
      roots: JSON.stringify(exportPublicJwk(story.root)),
    });
    expect([again.verdict, again.code, again.linkIndex]).toEqual(["invalid", "ERR_SIGNATURE", 2]);
    expect(again.links.map((l) => l.marks)).toEqual([[], [], ["failed"]]);
  });

  it("draws a token typed into the field, and verifies it once roots are pasted", async () => {
    const page = await open();
    expect((await read(page)).verdict).toBe("empty");
    await page.evaluate(`document.getElementById("token").focus()`);
    await page.insertText(story.text);
    const typed = await read(page);
    expect([typed.verdict, typed.links.length]).toEqual(["unchecked", 3]);
    await page.evaluate(`document.getElementById("roots").focus()`);
    await page.insertText(JSON.stringify(exportPublicJwk(story.root)));
    expect((await read(page)).verdict).toBe("valid");
    expect((await fill(page, { at: "1" })).verdict).toBe("input-error");
    expect((await fill(page, { at: "2099-01-01" })).code).toBe("ERR_EXPIRED");
    expect((await fill(page, { at: "", token: "" })).links).toEqual([]);
  });

  it("refuses roots that are not JSON, not a public key, or a private key", async () => {
    const page = await open({ token: story.text });
    for (const [roots, message] of [
      ["{not json", /not JSON/],
      ['{"kty":"RSA","n":"x","e":"AQAB"}', /./],
      [JSON.stringify({ keys: [] }), /no Ed25519 key/],
      [JSON.stringify(exportPrivateJwk(story.root)), /PRIVATE key/],
    ] as const) {
      const drawn = await fill(page, { roots });
      expect(drawn.verdict, roots).toBe("input-error");
      expect(drawn.message, roots).toMatch(message);
      expect(drawn.links, roots).toHaveLength(3);
    }
  });

  it("draws a label as text, never as markup", async () => {
    const label = `<img src=x onerror="document.title='owned'"><b>bold</b>`;
    const holder = await generateKeyPair();
    const token = formatToken(
      attenuate(story.token, {
        holderKey: story.holders[2],
        holder: publicKeyOf(holder),
        grant: { label },
      }),
    );
    const page = await open({ token });
    const drawn = await read(page);
    expect(drawn.links[3]?.label).toBe(label);
    expect(drawn.images).toBe(0);
    expect(await page.evaluate<number>(`document.querySelectorAll("#chain b").length`)).toBe(0);
    expect(await page.evaluate<string>("document.title")).toBe("Allowance token inspector");
  });

  it("opens with the token that allowance inspect --html filled in", async () => {
    const path = join(dir, "with-token.html");
    writeFileSync(path, await inspectorPageFor(story.text, {}));
    const drawn = await read(await open({}, pathToFileURL(path).href));
    expect([drawn.verdict, drawn.links.length]).toEqual(["unchecked", 3]);
  });

  it("verifies every spec vector it can judge as the vector expects (noble in Chromium)", async () => {
    // The page has no audience, revocation list or clock allowance: vectors that need one are left out.
    const vectors = readdirSync(join(root, "spec/vectors"))
      .filter((file) => file.endsWith(".json"))
      .map((file) => readVector(file.replace(/\.json$/, "")))
      .filter((v) => v.audience === undefined && v.revoked === undefined && v.skew === 0);
    expect(vectors.length).toBeGreaterThan(50);
    const page = await open();
    for (const vector of vectors) {
      const drawn = await fill(page, {
        token: vector.token,
        roots: JSON.stringify(vector.roots),
        at: String(vector.now),
      });
      if (vector.expected.valid) {
        expect(drawn.verdict, vector.name).toBe("valid");
        expect(
          drawn.links.map((l) => l.id),
          vector.name,
        ).toEqual(vector.expected.linkIds);
      } else {
        // Structural faults show before any signature is checked; the code is the verifier's.
        expect(drawn.verdict, vector.name).toMatch(/^(?:invalid|malformed)$/);
        expect([drawn.code, drawn.linkIndex], vector.name).toEqual([
          vector.expected.code,
          vector.expected.linkIndex,
        ]);
      }
    }
  }, 120_000);

  describe("nothing leaves the page", () => {
    let server: ReturnType<typeof createServer>;
    let base: string;
    const hits: string[] = [];

    beforeAll(async () => {
      server = createServer((request, response) => {
        hits.push(request.url ?? "");
        response.setHeader("access-control-allow-origin", "*");
        response.end("ok");
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** From inside the page: a fetch, an image, and an injected inline script. */
    const tryToLeak = (page: Page, tag: string) =>
      page.evaluate<{ fetched: boolean; scriptRan: boolean }>(`(async () => {
        let fetched = false;
        try { await fetch("${base}/fetch-${tag}"); fetched = true; } catch {}
        const image = new Image();
        image.src = "${base}/image-${tag}";
        document.body.append(image);
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.append(script);
        await new Promise((resolve) => setTimeout(resolve, 500));
        return { fetched, scriptRan: window.injected === true };
      })()`);

    it("blocks a fetch, an image and an injected inline script: the server sees no request", async () => {
      const page = await browser.open(`${pageUrl}#token=${story.text}`);
      expect((await read(page)).links).toHaveLength(3);
      expect(await tryToLeak(page, "csp")).toEqual({ fetched: false, scriptRan: false });
      expect(hits.filter((hit) => hit.endsWith("-csp"))).toEqual([]);
      expect(page.events.errors.join("\n")).toMatch(/Content Security Policy/);
    });

    it("the same page without its CSP does reach the server (so the test above can fail)", async () => {
      const path = join(dir, "no-csp.html");
      writeFileSync(
        path,
        inspectorPage().replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, ""),
      );
      const page = await browser.open(pathToFileURL(path).href);
      expect(await tryToLeak(page, "open")).toEqual({ fetched: true, scriptRan: true });
      expect(hits.filter((hit) => hit.endsWith("-open")).sort()).toEqual([
        "/fetch-open",
        "/image-open",
      ]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

/** Root → orchestrator → researcher → summarizer, each link narrower. */
async function threeLinks() {
  const root = await generateKeyPair();
  const holders = [await generateKeyPair(), await generateKeyPair(), await generateKeyPair()] as [
    KeyPair,
    KeyPair,
    KeyPair,
  ];
  const exp = Math.floor(Date.now() / 1000) + 3600;
  let token = mint({
    rootKey: root,
    holder: publicKeyOf(holders[0]),
    grant: {
      exp,
      tokens: 1_000_000,
      usdMicros: 50_000_000,
      providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 20_000_000 }],
      tools: ["search.*", "send_email"],
    },
  });
  token = attenuate(token, {
    holderKey: holders[0],
    holder: publicKeyOf(holders[1]),
    grant: { usdMicros: 10_000_000, tools: ["search.*"], label: "researcher" },
  });
  token = attenuate(token, {
    holderKey: holders[1],
    holder: publicKeyOf(holders[2]),
    grant: {
      exp: exp - 1800,
      usdMicros: 2_500_000,
      providers: [{ name: "anthropic", usdMicros: 1_000_000 }],
      tools: ["search.web"],
    },
  });
  return { root, holders, exp, token, text: formatToken(token) };
}

function instant(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function readVector(name: string): Vector {
  return JSON.parse(readFileSync(join(root, "spec/vectors", `${name}.json`), "utf8")) as Vector;
}

function scriptOf(html: string): string {
  return /<script>([\s\S]*?)<\/script>/.exec(html)?.[1] ?? "";
}
