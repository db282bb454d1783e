import { readFileSync, statSync, writeFileSync } from "node:fs";
import {
  attenuate,
  formatToken,
  generateKeyPair,
  importPublicJwk,
  mint,
  parseToken,
  publicKeyOf,
  trustedRoots,
} from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify, verifyPresentation } from "@allowance/verifier";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
const kids: Record<string, string> = {};
let orchestratorToken = "";
let researcherToken = "";

beforeAll(() => {
  for (const name of ["root", "orch", "researcher", "stranger"]) {
    const run = allowance(["keygen", "--out", at(`${name}.jwk`), "--json"]);
    expectSuccess(run);
    kids[name] = json<{ kid: string }>(run).kid;
  }
  const mint = allowance([
    "mint",
    "--key",
    at("root.jwk"),
    "--to",
    at("orch.pub.jwk"),
    "--tokens",
    "1M",
    "--usd",
    "50",
    "--providers",
    "openai,anthropic:usd=20",
    "--tools",
    "search.*,send_email",
    "--risk",
    "100",
    "--depth",
    "3",
    "--expires",
    "24h",
    "--rate",
    "100k-tokens/1h",
    "--label",
    "run-42",
  ]);
  expectSuccess(mint);
  orchestratorToken = mint.stdout.trim();
  writeFileSync(at("orch.token"), orchestratorToken + "\n");
  const child = allowance([
    "attenuate",
    "--token",
    `@${at("orch.token")}`,
    "--key",
    at("orch.jwk"),
    "--to",
    at("researcher.pub.jwk"),
    "--usd",
    "2.50",
    "--tools",
    "search.web",
    "--label",
    "researcher",
  ]);
  expectSuccess(child);
  researcherToken = child.stdout.trim();
  writeFileSync(at("researcher.token"), researcherToken + "\n");
});

afterAll(() => tmp.remove());

const roots = () => ["--roots", at("root.pub.jwk")];
/** `allowance ledger remaining` of the researcher's token on `ledger`, with any further arguments. */
const remaining = (ledger: string, ...more: string[]) =>
  allowance([
    "ledger",
    "remaining",
    "--token",
    researcherToken,
    ...roots(),
    "--ledger",
    ledger,
    ...more,
  ]);

describe("allowance keygen", () => {
  it("writes the private JWK with mode 0600 and the public JWK beside it, and prints the kid", () => {
    const run = allowance(["keygen", "--out", at("fresh.jwk")]);
    expectSuccess(run);
    expect(statSync(at("fresh.jwk")).mode & 0o777).toBe(0o600);
    const publicJwk = JSON.parse(readFileSync(at("fresh.pub.jwk"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(publicJwk).not.toHaveProperty("d");
    expect(run.stdout).toContain(`kid ${String(publicJwk["kid"])}`);
    expect(run.stdout).toContain(String(publicJwk["x"]));
  });

  it("--json gives the kid, the public JWK and both file names", async () => {
    const out = json<{
      kid: string;
      publicJwk: Record<string, unknown>;
      privateKeyFile: string;
      publicKeyFile: string;
    }>(allowance(["keygen", "--out", at("j.jwk"), "--json"]));
    expect(out).toMatchObject({
      privateKeyFile: at("j.jwk"),
      publicKeyFile: at("j.pub.jwk"),
      publicJwk: { kty: "OKP", crv: "Ed25519" },
    });
    expect((await importPublicJwk(out.publicJwk)).kid).toBe(out.kid);
  });

  it("refuses to overwrite an existing key file (exit 2)", () => {
    expectFailure(allowance(["keygen", "--out", at("root.jwk")]), 2, /already exists.*--force/);
  });
});

describe("allowance mint", () => {
  it("turns human units into exact integers in the token", async () => {
    const chain = verify(orchestratorToken, { roots: await trusted() });
    expect(chain.grant).toMatchObject({
      tokens: 1_000_000,
      usdMicros: 50_000_000,
      providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 20_000_000 }],
      tools: ["search.*", "send_email"],
      risk: 100,
      depth: 3,
      rate: [{ seconds: 3600, tokens: 100_000 }],
      label: "run-42",
    });
    expect(chain.grant.exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(86_300);
  });

  it("--json gives the token, its link ids and the exact grant", () => {
    const run = allowance([
      "mint",
      "--key",
      at("root.jwk"),
      "--to",
      at("orch.pub.jwk"),
      "--usd",
      "19.99",
      "--tokens",
      "1.5M",
      "--expires",
      "2099-01-01T00:00:00Z",
      "--nbf",
      "now",
      "--json",
    ]);
    expectSuccess(run);
    const out = json<{
      token: string;
      rootKid: string;
      holderKid: string;
      linkIds: string[];
      linkId: string;
      grant: Record<string, unknown>;
    }>(run);
    expect(out.token).toMatch(/^alw1_/);
    expect(out).toMatchObject({
      rootKid: kids["root"],
      holderKid: kids["orch"],
      grant: { usdMicros: 19_990_000, tokens: 1_500_000, exp: 4_070_908_800 },
    });
    expect(out.linkIds).toEqual([out.linkId]);
  });

  it("rejects a malformed amount with one line naming the flag (exit 2)", () => {
    expectFailure(
      allowance([
        "mint",
        "--key",
        at("root.jwk"),
        "--to",
        at("orch.pub.jwk"),
        "--expires",
        "1h",
        "--usd",
        "1.2345678",
      ]),
      2,
      /--usd: expected dollars/,
    );
    expectFailure(
      allowance([
        "mint",
        "--key",
        at("root.jwk"),
        "--to",
        at("orch.pub.jwk"),
        "--expires",
        "1h",
        "--rate",
        "100k-tokens/1w",
      ]),
      2,
      /--rate: expected/,
    );
  });

  it("names a missing key file and how to make one (exit 2)", () => {
    expectFailure(
      allowance(["mint", "--key", at("nope.jwk"), "--to", at("orch.pub.jwk"), "--expires", "1h"]),
      2,
      /cannot read --key file .*nope\.jwk: no such file/,
    );
  });

  it("refuses a public JWK where the private key is needed (exit 2)", () => {
    expectFailure(
      allowance([
        "mint",
        "--key",
        at("root.pub.jwk"),
        "--to",
        at("orch.pub.jwk"),
        "--expires",
        "1h",
      ]),
      2,
      /not an Ed25519 private JWK/,
    );
  });

  it("reports a missing required flag and unknown options as usage errors in one line (exit 2)", () => {
    expectFailure(
      allowance(["mint", "--key", at("root.jwk"), "--to", at("orch.pub.jwk")]),
      2,
      /--expires.*not specified.*allowance mint --help/,
    );
    expectFailure(
      allowance(["verify", researcherToken, ...roots(), "--bogus"]),
      2,
      /unknown option '--bogus'/,
    );
  });
});

/** The root's public key as the test's own trusted roots, read from the file keygen wrote. */
async function trusted() {
  return trustedRoots([
    await importPublicJwk(JSON.parse(readFileSync(at("root.pub.jwk"), "utf8"))),
  ]);
}

describe("allowance attenuate", () => {
  it("appends a narrower link that verifies, reading the parent token from stdin", async () => {
    const run = allowance(
      [
        "attenuate",
        "--token",
        "-",
        "--key",
        at("orch.jwk"),
        "--to",
        at("stranger.pub.jwk"),
        "--tokens",
        "50k",
        "--providers",
        "anthropic",
        "--expires",
        "1h",
        "--json",
      ],
      { input: orchestratorToken },
    );
    expectSuccess(run);
    const out = json<{
      token: string;
      linkIds: string[];
      holderKid: string;
      grant: Record<string, unknown>;
    }>(run);
    expect(out.linkIds).toHaveLength(2);
    expect(out.holderKid).toBe(kids["stranger"]);
    const chain = verify(out.token, { roots: await trusted() });
    expect(chain.grant).toMatchObject({
      tokens: 50_000,
      usdMicros: 50_000_000,
      providers: [{ name: "anthropic", usdMicros: 20_000_000 }],
      depth: 2,
    });
  });

  it("refuses a widening with every violation by field on one line (exit 1)", () => {
    const run = allowance([
      "attenuate",
      "--token",
      orchestratorToken,
      "--key",
      at("orch.jwk"),
      "--to",
      at("researcher.pub.jwk"),
      "--usd",
      "60",
      "--tools",
      "admin.*",
      "--providers",
      "openai,google",
    ]);
    expectFailure(
      run,
      1,
      /ERR_WIDENED.*usd: asks \$60, the parent has \$50.*providers: google.*tools: admin\.\*/,
    );
  });

  it("--json lists the violations with their fields", () => {
    const run = allowance([
      "attenuate",
      "--token",
      orchestratorToken,
      "--key",
      at("orch.jwk"),
      "--to",
      at("researcher.pub.jwk"),
      "--usd",
      "60",
      "--risk",
      "500",
      "--json",
    ]);
    expect(run.code).toBe(1);
    const out = json<{
      ok: boolean;
      code: string;
      linkIndex: number;
      violations: { field: string; parent: unknown; child: unknown; text: string }[];
    }>(run);
    expect(out.ok).toBe(false);
    expect(out.code).toBe("ERR_WIDENED");
    expect(out.linkIndex).toBe(1);
    expect(out.violations).toEqual([
      {
        field: "usdMicros",
        reason: "widened",
        parent: 50_000_000,
        child: 60_000_000,
        text: "usd: asks $60, the parent has $50",
      },
      { field: "risk", reason: "widened", parent: 100, child: 500, text: expect.any(String) },
    ]);
  });

  it("refuses a key that is not the token's holder (exit 1)", () => {
    expectFailure(
      allowance([
        "attenuate",
        "--token",
        orchestratorToken,
        "--key",
        at("stranger.jwk"),
        "--to",
        at("researcher.pub.jwk"),
        "--usd",
        "1",
      ]),
      1,
      /ERR_KEY.*private key of the token's holder/,
    );
  });

  it("refuses a malformed token (exit 2)", () => {
    expectFailure(
      allowance([
        "attenuate",
        "--token",
        "alw1_AAAA",
        "--key",
        at("orch.jwk"),
        "--to",
        at("researcher.pub.jwk"),
      ]),
      2,
      /token is malformed/,
    );
    expectFailure(
      allowance([
        "attenuate",
        "--token",
        "hello",
        "--key",
        at("orch.jwk"),
        "--to",
        at("researcher.pub.jwk"),
      ]),
      2,
      /not an Allowance token/,
    );
  });
});

describe("allowance inspect", () => {
  it("prints the chain as a tree with signer, holder, grant and what each link narrowed", () => {
    const run = allowance(["inspect", `@${at("researcher.token")}`]);
    expectSuccess(run);
    expect(run.stdout).toContain("signatures NOT checked");
    expect(run.stdout).toContain(`signed by root ${kids["root"]}`);
    expect(run.stdout).toContain(`signed by ${kids["orch"]}`);
    expect(run.stdout).toContain(`holder    ${kids["researcher"]}`);
    expect(run.stdout).toMatch(
      /grant +expires .* · tokens 1M · usd \$50 · providers openai, anthropic:usd=20/,
    );
    expect(run.stdout).toContain(
      "narrowed  usd $50 → $2.50 · tools search.*, send_email → search.web",
    );
  });

  it("--json gives each link's index, id, signer, holder, own grant and narrowings", () => {
    const out = json<{
      signaturesChecked: boolean;
      rootKid: string;
      links: Record<string, unknown>[];
    }>(allowance(["inspect", researcherToken, "--json"]));
    expect(out.signaturesChecked).toBe(false);
    expect(out.rootKid).toBe(kids["root"]);
    expect(out.links).toHaveLength(2);
    expect(out.links[0]).toMatchObject({
      index: 0,
      signerKid: kids["root"],
      holderKid: kids["orch"],
      grant: { usdMicros: 50_000_000 },
      narrowed: [],
    });
    expect(out.links[1]).toMatchObject({
      index: 1,
      signerKid: kids["orch"],
      holderKid: kids["researcher"],
      grant: { usdMicros: 2_500_000, tools: ["search.web"], label: "researcher" },
      narrowed: [
        { field: "usd", parent: "$50", child: "$2.50" },
        { field: "tools", parent: "search.*, send_email", child: "search.web" },
      ],
    });
    expect(String(out.links[1]?.["id"])).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("shows each link's tool-argument constraints (args), and what a link narrowed them to", async () => {
    const [root, a, b] = await Promise.all([
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
    ]);
    const mail = (domains: string[], max: number) => [
      {
        tool: "email.send",
        constraints: [
          { name: "to", kind: "emailDomain" as const, domains },
          { name: "subject", kind: "maxLength" as const, max, optional: true as const },
          { name: "bcc", kind: "forbidden" as const },
        ],
      },
    ];
    let token = mint({
      rootKey: root,
      holder: publicKeyOf(a),
      grant: {
        exp: Math.floor(Date.now() / 1000) + 3600,
        tools: ["email.send"],
        args: mail(["example.com", "*.example.org"], 200),
      },
    });
    token = attenuate(token, {
      holderKey: a,
      holder: publicKeyOf(b),
      grant: { args: mail(["example.com"], 100) },
    });
    const run = allowance(["inspect", formatToken(token)]);
    expectSuccess(run);
    expect(run.stdout).toContain(
      "args email.send: to an address at example.com, *.example.org; bcc absent; subject at most 200 bytes or items (optional); no other arguments",
    );
    const out = json<{ links: { narrowed: { field: string; parent: string; child: string }[] }[] }>(
      allowance(["inspect", formatToken(token), "--json"]),
    );
    expect(out.links[1]?.narrowed).toEqual([
      {
        field: "args",
        parent:
          "email.send: to an address at example.com, *.example.org; bcc absent; subject at most 200 bytes or items (optional); no other arguments",
        child:
          "email.send: to an address at example.com; bcc absent; subject at most 100 bytes or items (optional); no other arguments",
      },
    ]);
  });

  it("refuses a malformed token and a missing token file (exit 2)", () => {
    expectFailure(allowance(["inspect", "alw1_zzzz"]), 2, /token is malformed/);
    expectFailure(
      allowance(["inspect", `@${at("missing.token")}`]),
      2,
      /cannot read token file .*missing\.token: no such file/,
    );
  });
});

describe("allowance verify", () => {
  it("prints the effective grant of a valid chain", () => {
    const run = allowance(["verify", researcherToken, ...roots()]);
    expectSuccess(run);
    expect(run.stdout).toMatch(/^valid: 2 links from root /);
    expect(run.stdout).toContain("usd $2.50");
    expect(run.stdout).toContain("tools search.web");
    // A grant without `args` leaves every tool's arguments free: said, never left to be guessed.
    expect(run.stdout).toContain("unrestricted: models, aud, args");
  });

  it("--json gives the effective grant in exact integers and the link ids", () => {
    const out = json<{
      ok: boolean;
      rootKid: string;
      holderKid: string;
      linkIds: string[];
      grant: Record<string, unknown>;
    }>(allowance(["verify", researcherToken, ...roots(), "--json"]));
    expect(out).toMatchObject({
      ok: true,
      rootKid: kids["root"],
      holderKid: kids["researcher"],
      grant: { usdMicros: 2_500_000, tokens: 1_000_000, depth: 2 },
    });
    expect(out.linkIds).toHaveLength(2);
  });

  it("fails with the error code and link for an unknown root (exit 1)", () => {
    const run = allowance(["verify", researcherToken, "--roots", at("stranger.pub.jwk"), "--json"]);
    expectFailure(run, 1, /verification failed \(ERR_UNKNOWN_ROOT at link 0\)/);
    expect(json(run)).toMatchObject({ ok: false, code: "ERR_UNKNOWN_ROOT", linkIndex: 0 });
  });

  it("fails with ERR_SIGNATURE at the tampered link (exit 1)", () => {
    const token = parseToken(researcherToken);
    const last = token.links[1];
    if (last === undefined) throw new Error("expected two links");
    const signature = Uint8Array.from(last.signature);
    signature[0] = (signature[0] ?? 0) ^ 1;
    const tampered = formatToken({
      rootKid: token.rootKid,
      links: [token.links[0] as never, { payload: last.payload, signature }],
    });
    expectFailure(allowance(["verify", tampered, ...roots()]), 1, /ERR_SIGNATURE at link 1/);
  });

  it("checks expiry as of --at and the audience of --aud (exit 1)", () => {
    expectFailure(
      allowance(["verify", researcherToken, ...roots(), "--at", "48h"]),
      1,
      /ERR_EXPIRED at link 0/,
    );
    const withAud = allowance([
      "attenuate",
      "--token",
      researcherToken,
      "--key",
      at("researcher.jwk"),
      "--to",
      at("stranger.pub.jwk"),
      "--aud",
      "https://tools.example",
    ]);
    expectSuccess(withAud);
    expectSuccess(
      allowance(["verify", withAud.stdout.trim(), ...roots(), "--aud", "https://tools.example"]),
    );
    expectFailure(
      allowance([
        "verify",
        withAud.stdout.trim(),
        ...roots(),
        "--aud",
        "https://elsewhere.example",
      ]),
      1,
      /ERR_AUDIENCE/,
    );
  });

  it("treats a malformed token and a bad roots file as usage errors (exit 2)", () => {
    expectFailure(allowance(["verify", "alw1_zzzz", ...roots()]), 2, /token is malformed/);
    expectFailure(
      allowance(["verify", researcherToken, "--roots", at("missing.jwks")]),
      2,
      /cannot read --roots file/,
    );
    writeFileSync(at("bad.jwks"), "{not json");
    expectFailure(
      allowance(["verify", researcherToken, "--roots", at("bad.jwks")]),
      2,
      /--roots file .* is not valid JSON/,
    );
  });
});

describe("allowance present", () => {
  it("prints an Authorization header value that the verifier accepts", async () => {
    const run = allowance([
      "present",
      researcherToken,
      "--key",
      at("researcher.jwk"),
      "--aud",
      "https://tools.example/search",
      "--method",
      "post",
      "--path",
      "/search",
    ]);
    expectSuccess(run);
    const header = run.stdout.trim();
    expect(header).toMatch(/^Allowance alwp1_/);
    const verified = await verifyPresentation(header.slice("Allowance ".length), {
      roots: await trusted(),
      audience: "https://tools.example/search",
      method: "POST",
      path: "/search",
    });
    expect(verified.chain.linkIds).toHaveLength(2);
  });

  it("--json gives the header, the presentation and what it binds", () => {
    const out = json(
      allowance([
        "present",
        researcherToken,
        "--key",
        at("researcher.jwk"),
        "--aud",
        "https://tools.example",
        "--method",
        "get",
        "--json",
      ]),
    );
    expect(out).toMatchObject({ aud: "https://tools.example", method: "GET" });
    expect(out["header"]).toBe(`Allowance ${String(out["presentation"])}`);
  });

  it("refuses a key that is not the token's holder (exit 1)", () => {
    expectFailure(
      allowance([
        "present",
        researcherToken,
        "--key",
        at("orch.jwk"),
        "--aud",
        "https://tools.example",
      ]),
      1,
      /ERR_KEY.*not the holder/,
    );
  });
});

describe("allowance revoke", () => {
  it("revokes a link id so that its chain fails verification while its parent still verifies", () => {
    const id =
      json<{ links: { id: string }[] }>(allowance(["inspect", researcherToken, "--json"])).links[1]
        ?.id ?? "";
    const run = allowance(["revoke", id, "--store", at("revoked.json"), "--json"]);
    expectSuccess(run);
    expect(json(run)).toEqual({
      ok: true,
      revoked: id,
      already: false,
      store: at("revoked.json"),
      count: 1,
    });
    expectFailure(
      allowance(["verify", researcherToken, ...roots(), "--revocations", at("revoked.json")]),
      1,
      /ERR_REVOKED at link 1/,
    );
    expectSuccess(
      allowance(["verify", orchestratorToken, ...roots(), "--revocations", at("revoked.json")]),
    );
  });

  it("revokes a link id that starts with '-' as written, before or after --store (one id in 64 does)", () => {
    const id = `-${"A".repeat(42)}`;
    for (const args of [
      ["revoke", id, "--store", at("dash.json"), "--json"],
      ["revoke", "--store", at("dash.json"), id, "--json"],
      ["revoke", "--store", at("dash.json"), "--json", "--", id],
    ]) {
      const run = allowance(args);
      expectSuccess(run);
      expect(json(run)).toMatchObject({ ok: true, revoked: id });
    }
    // A --store value equal to the id stays --store's.
    const run = allowance(["revoke", id, "--store", id, "--json"], { cwd: tmp.dir });
    expectSuccess(run);
    expect(json(run)).toMatchObject({ revoked: id, store: id });
  });

  it("refuses something that is not a link id (exit 2)", () => {
    expectFailure(
      allowance(["revoke", "not-an-id", "--store", at("revoked.json")]),
      2,
      /not a link id/,
    );
  });

  it("refuses a missing revocation file in verify (exit 2)", () => {
    expectFailure(
      allowance(["verify", researcherToken, ...roots(), "--revocations", at("none.json")]),
      2,
      /no such file/,
    );
  });
});

describe("allowance ledger remaining", () => {
  it("shows spent, held and left per link from a SQLite ledger another process wrote", async () => {
    const path = at("ledger.db");
    const chain = verify(researcherToken, { roots: await trusted() });
    const ledger = SqliteLedger.open(path);
    const enforcer = new Enforcer({ ledger });
    const decision = await enforcer.reserve({
      chain,
      provider: "openai",
      tokens: 3_000,
      usdMicros: 400_000,
    });
    if (decision.decision === "DENY") throw new Error("expected the reservation to be allowed");
    await enforcer.commit(decision.reservationId, { tokens: 2_000, usdMicros: 250_000 });
    await enforcer.reserve(
      { chain, provider: "openai", tokens: 1_000, usdMicros: 100_000 },
      { ttl: 600 },
    );
    const expected = await enforcer.remaining(chain);
    await ledger.close();

    const run = remaining(`sqlite:${path}`, "--json");
    expectSuccess(run);
    const out = json<{
      ledger: { kind: string };
      links: {
        index: number;
        limits: { field: string; spent: number; held: number; remaining: number | null }[];
      }[];
      leaf: Record<string, unknown>;
    }>(run);
    expect(out.ledger.kind).toBe("sqlite");
    // The same report, with times in epoch seconds named so (`resetsAtSeconds`, not ms `resetsAt`);
    // a line with no cap on which nothing moved is left out.
    expect(out.links).toEqual(
      expected.links.map((link) => ({
        ...link,
        limits: link.limits
          .filter((l) => l.cap !== null || l.spent > 0 || l.held > 0)
          .map(({ resetsAt, ...limit }) => ({
            ...limit,
            ...(resetsAt === undefined ? {} : { resetsAtSeconds: Math.floor(resetsAt / 1000) }),
          })),
      })),
    );
    expect(out.leaf).toEqual(expected.leaf);
    expect(out.links[1]?.limits.find((l) => l.field === "usdMicros")).toMatchObject({
      spent: 250_000,
      held: 100_000,
      remaining: 2_150_000,
    });

    const text = remaining(`sqlite:${path}`);
    expectSuccess(text);
    expect(text.stdout).toMatch(/usd +spent \$0.25 +held \$0.10 +left \$2.15 of \$2.50/);
  });

  it('shows by how much spent went past a cap, not "left $0", in text and in --json', async () => {
    const path = at("overrun.db");
    const chain = verify(researcherToken, { roots: await trusted() });
    const ledger = SqliteLedger.open(path);
    const enforcer = new Enforcer({ ledger });
    const decision = await enforcer.reserve({ chain, provider: "openai", usdMicros: 2_000_000 });
    if (decision.decision === "DENY") throw new Error("expected the reservation to be allowed");
    // The call cost more than held: the whole $2.50 cap and $0.75 more.
    await enforcer.commit(decision.reservationId, { usdMicros: 3_250_000 });
    await ledger.close();

    const run = remaining(`sqlite:${path}`, "--json");
    expectSuccess(run);
    const out = json<{
      links: {
        index: number;
        limits: { field: string; spent: number; remaining: number | null; overBy?: number }[];
      }[];
    }>(run);
    expect(out.links[1]?.limits.find((l) => l.field === "usdMicros")).toMatchObject({
      spent: 3_250_000,
      remaining: 0,
      overBy: 750_000,
    });
    expect(out.links[1]?.limits.find((l) => l.field === "tokens")?.overBy).toBeUndefined();

    const text = remaining(`sqlite:${path}`);
    expectSuccess(text);
    expect(text.stdout).toMatch(/usd +spent \$3.25 +held \$0 +over by \$0.75 of \$2.50/);
    expect(text.stdout).not.toMatch(/left \$0 of \$2.50/);

    // An operator settles the debt (spec/enforcement.md §3.9): --json says how much was settled.
    const settling = SqliteLedger.open(path);
    await new Enforcer({ ledger: settling }).settle(chain, { linkIndex: 1 });
    await settling.close();
    const settled = json<{ links: { limits: { field: string; settled?: number }[] }[] }>(
      remaining(`sqlite:${path}`, "--json"),
    );
    expect(settled.links[1]?.limits.find((l) => l.field === "usdMicros")).toMatchObject({
      overBy: 750_000,
      settled: 750_000,
    });
  });

  it("refuses an unknown ledger kind and an unreachable Redis (exit 2)", () => {
    expectFailure(remaining("postgres:x"), 2, /is not a ledger/);
    expectFailure(remaining("redis://127.0.0.1:1"), 2, /cannot reach the Redis ledger/);
  });
});

describe("every command", () => {
  const commands = [
    "keygen",
    "mint",
    "attenuate",
    "inspect",
    "verify",
    "present",
    "revoke",
    "ledger remaining",
    "mcp",
    "demo",
  ];
  it.each(commands)("%s --help shows an example and exits 0", (command) => {
    const run = allowance([...command.split(" "), "--help"]);
    expectSuccess(run);
    expect(run.stdout).toMatch(/Examples?:\n {2}/);
    if (command !== "mcp") expect(run.stdout).toContain("--json");
  });

  it("exits 2 with a usage line when no command is given or the command is unknown", () => {
    expect(allowance([]).code).toBe(2);
    expectFailure(allowance(["frobnicate"]), 2, /unknown command 'frobnicate'/);
  });
});
