/**
 * The token inspector page's script, bundled for the browser by scripts/build-inspector.ts (the
 * portable platform: @noble/ed25519 and @noble/hashes, no Node module). Paste a token and see its
 * chain as a tree — each link's signer, holder, grant and what it narrowed, as `allowance inspect`
 * shows it — and, given trusted root keys, the verifier's verdict, as `allowance verify` gives it.
 *
 * Nothing leaves the page: its CSP is default-src 'none' (no fetch, no image, no form target), the
 * inputs come from its own fields or its URL fragment (#token=…&roots=…&at=…, which browsers never
 * send), and everything drawn from a token is set as text, never parsed as markup.
 */
import {
  AllowanceError,
  importJwks,
  importPublicJwk,
  parseToken,
  readUnverifiedGrants,
  trustedRoots,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { toBase64url } from "@allowance/core/format";
import { verify } from "@allowance/verifier";
import { describeViolation } from "../src/describe.js";
import { inspectLinks, type InspectedLink } from "../src/inspection.js";
import { formatInstant, parseInstant } from "../src/units.js";

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new TypeError(`the page has no ${type.name} #${id}`);
  return found;
}

const tokenField = element("token", HTMLTextAreaElement);
const rootsField = element("roots", HTMLTextAreaElement);
const atField = element("at", HTMLInputElement);
const verdictView = element("verdict", HTMLElement);
const chainView = element("chain", HTMLElement);

/** `tag` with a class and text (set as text: a label or a tool name is never markup). */
function make(tag: string, className?: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

type Verdict =
  | { readonly kind: "empty" }
  | { readonly kind: "malformed"; readonly error: AllowanceError }
  | { readonly kind: "unchecked" }
  | { readonly kind: "input-error"; readonly message: string }
  | { readonly kind: "valid"; readonly atSeconds: number; readonly rootKid: string }
  | { readonly kind: "invalid"; readonly atSeconds: number; readonly error: AllowanceError };

function showVerdict(verdict: Verdict, linkCount: number): void {
  verdictView.replaceChildren();
  verdictView.dataset["verdict"] = verdict.kind;
  delete verdictView.dataset["code"];
  delete verdictView.dataset["linkIndex"];
  const title = (text: string) => verdictView.append(make("span", "verdict-title", text));
  const detail = (text: string) => verdictView.append(make("span", "verdict-detail", text));
  switch (verdict.kind) {
    case "empty":
      title("Paste a token.");
      return;
    case "malformed":
      verdictView.dataset["code"] = verdict.error.code;
      if (verdict.error.linkIndex !== undefined)
        verdictView.dataset["linkIndex"] = String(verdict.error.linkIndex);
      title(`Malformed token: ${verdict.error.code}`);
      detail(atLink(verdict.error) + verdict.error.message);
      return;
    case "unchecked":
      title("Signatures NOT checked.");
      detail(
        "Paste the trusted root keys to verify the chain; until then, this is what it claims.",
      );
      return;
    case "input-error":
      title("Cannot verify.");
      detail(verdict.message);
      return;
    case "valid":
      title(`Valid: ${linkCount} link${linkCount === 1 ? "" : "s"} from a trusted root.`);
      detail(
        `Every signature and narrowing checked as of ${formatInstant(verdict.atSeconds)}, with no clock allowance; root ${verdict.rootKid}.`,
      );
      return;
    case "invalid":
      verdictView.dataset["code"] = verdict.error.code;
      if (verdict.error.linkIndex !== undefined)
        verdictView.dataset["linkIndex"] = String(verdict.error.linkIndex);
      title(`Invalid: ${verdict.error.code}`);
      detail(
        `${atLink(verdict.error)}${verdict.error.message} (as of ${formatInstant(verdict.atSeconds)}, no clock allowance).`,
      );
      return;
  }
}

function atLink(error: AllowanceError): string {
  return error.linkIndex === undefined ? "" : `at link ${error.linkIndex}: `;
}

/** One link's card; `failed` marks the link the verifier refused, `checked` a verified chain. */
function linkCard(link: InspectedLink, state: "checked" | "failed" | "unchecked"): HTMLElement {
  const item = make("li", "link");
  item.dataset["index"] = String(link.index);
  if (state !== "unchecked") item.classList.add(state);
  if (link.violations !== undefined) item.classList.add("wider");
  const card = make("div", "card");
  const heading = make("h2", undefined, `link ${link.index}`);
  if (link.grant.label !== undefined) heading.append(make("span", "label", link.grant.label));
  if (state === "checked") heading.append(make("span", "badge ok", "signature checked"));
  if (state === "failed") heading.append(make("span", "badge bad", "refused here"));
  if (link.violations !== undefined) heading.append(make("span", "badge bad", "wider"));
  card.append(heading);

  const list = make("dl");
  const row = (term: string, value: HTMLElement) => list.append(make("dt", undefined, term), value);
  const code = (className: string, text: string) => {
    const dd = make("dd");
    dd.append(make("code", className, text));
    return dd;
  };
  row("id", code("link-id", link.id));
  row(link.index === 0 ? "signed by root" : "signed by", code("signer", link.signerKid));
  row("holder", code("holder", link.holderKid));
  const grant = make("ul", "grant");
  for (const line of link.describe) grant.append(make("li", undefined, line));
  if (link.describe.length === 0) grant.append(make("li", undefined, "(inherits everything)"));
  const grantValue = make("dd");
  grantValue.append(grant);
  row("grant", grantValue);
  if (link.index > 0) {
    const narrowedValue = make("dd");
    if (link.narrowed.length === 0)
      narrowedValue.append(make("span", "nothing", "nothing: the same as its parent"));
    else {
      const table = make("table", "narrowed");
      for (const n of link.narrowed) {
        const tr = make("tr");
        tr.dataset["field"] = n.field;
        tr.append(
          make("th", undefined, n.field),
          make("td", "from", n.parent),
          make("td", undefined, "→"),
          make("td", "to", n.child),
        );
        table.append(tr);
      }
      narrowedValue.append(table);
    }
    // A wider link's changes are not narrowings: the violations below say which widen.
    row(link.violations === undefined ? "narrowed" : "changed", narrowedValue);
  }
  card.append(list);
  if (link.violations !== undefined)
    card.append(
      make(
        "p",
        "violations",
        `Wider than its parent: ${link.violations.map(describeViolation).join("; ")}`,
      ),
    );
  item.append(card);
  return item;
}

/** The chain as a tree: the root key, then each link nested under the one that signed it. */
function showChain(
  token: Token,
  text: string,
  links: readonly InspectedLink[],
  verdict: Verdict,
): void {
  const rootKid = toBase64url(token.rootKid);
  const summary = make(
    "p",
    "summary",
    `${links.length} link${links.length === 1 ? "" : "s"}, ${text.length} characters`,
  );
  const root = make("div", "root-node", "root key ");
  root.append(make("code", "root-kid", rootKid));
  let parent = make("ul", "tree");
  const top = parent;
  for (const link of links) {
    const state =
      verdict.kind === "valid"
        ? "checked"
        : verdict.kind === "invalid" && verdict.error.linkIndex === link.index
          ? "failed"
          : "unchecked";
    const item = linkCard(link, state);
    parent.append(item);
    const children = make("ul", "tree");
    item.append(children);
    parent = children;
  }
  parent.remove();
  chainView.replaceChildren(summary, root, top);
}

/** A JWKS or one public JWK, as `allowance verify --roots` reads them; a private key is refused. */
async function readRoots(text: string): Promise<TrustedRoots> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new TypeError("the root keys are not JSON: paste a JWKS or a public JWK");
  }
  if (typeof json === "object" && json !== null && "d" in json)
    throw new TypeError("that is a PRIVATE key: paste the public key (root.pub.jwk) instead");
  if (typeof json === "object" && json !== null && "keys" in json) return importJwks(json);
  return trustedRoots([await importPublicJwk(json)]);
}

let generation = 0;

/** Draws the current fields; `aria-busy` on the chain says whether a drawing is under way. */
async function render(): Promise<void> {
  const mine = ++generation;
  chainView.setAttribute("aria-busy", "true");
  try {
    await draw(mine);
  } finally {
    if (mine === generation) chainView.setAttribute("aria-busy", "false");
  }
}

async function draw(mine: number): Promise<void> {
  const text = tokenField.value.trim();
  if (text === "") {
    chainView.replaceChildren();
    showVerdict({ kind: "empty" }, 0);
    return;
  }
  let token: Token;
  let links: InspectedLink[];
  try {
    token = parseToken(text);
    links = await inspectLinks(token, readUnverifiedGrants(token), toBase64url(token.rootKid));
  } catch (error) {
    if (!(error instanceof AllowanceError)) throw error;
    if (mine !== generation) return;
    chainView.replaceChildren();
    showVerdict({ kind: "malformed", error }, 0);
    return;
  }
  const verdict = await check(token);
  if (mine !== generation) return;
  showChain(token, text, links, verdict);
  showVerdict(verdict, links.length);
}

async function check(token: Token): Promise<Verdict> {
  const rootsText = rootsField.value.trim();
  if (rootsText === "") return { kind: "unchecked" };
  let roots: TrustedRoots;
  let atSeconds: number;
  try {
    roots = await readRoots(rootsText);
    if (roots.size === 0) throw new TypeError("the JWKS has no Ed25519 key");
    const nowSeconds = Math.floor(Date.now() / 1000);
    atSeconds = parseInstant(atField.value.trim() || "now", nowSeconds, "verify as of");
  } catch (error) {
    return { kind: "input-error", message: error instanceof Error ? error.message : String(error) };
  }
  try {
    const chain = verify(token, { roots, now: () => atSeconds * 1000, skewSeconds: 0 });
    return { kind: "valid", atSeconds, rootKid: chain.rootKid };
  } catch (error) {
    if (error instanceof AllowanceError) return { kind: "invalid", atSeconds, error };
    // The clock's range (spec/format.md §8): a time before 1973 is the input's fault.
    if (error instanceof RangeError) return { kind: "input-error", message: error.message };
    throw error;
  }
}

/** Shows an unexpected failure on the page too, so that it is never a silent blank. */
function run(): void {
  render().catch((error: unknown) => {
    chainView.replaceChildren();
    verdictView.dataset["verdict"] = "input-error";
    verdictView.replaceChildren(
      make("span", "verdict-title", "Unexpected error."),
      make("span", "verdict-detail", error instanceof Error ? error.message : String(error)),
    );
  });
}

// #token=…&roots=…&at=… fills the fields (a fragment is never sent to a server).
const fragment = new URLSearchParams(location.hash.slice(1));
for (const [name, field] of [
  ["token", tokenField],
  ["roots", rootsField],
  ["at", atField],
] as const) {
  const value = fragment.get(name);
  if (value !== null) field.value = value;
}
for (const field of [tokenField, rootsField, atField]) field.addEventListener("input", run);
run();
