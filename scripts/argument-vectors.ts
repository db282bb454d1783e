/**
 * Vectors for tool-argument constraints (spec/arguments.md §8): (args, tool, arguments, decision)
 * triples for spec/vectors/arguments/, and chains whose links state `args` for spec/vectors/
 * (added to the token vectors by scripts/vectors.ts). Fixed keys and nonces: the output is stable.
 */
import {
  attenuate,
  checkArgumentsJson,
  keyPairFromSeed,
  mint,
  type GrantFields,
  type KeyPair,
  type Link,
  type Token,
  type ToolArguments,
} from "@allowance/core";
import {
  encodeCanonical,
  encodePayload,
  parentDigest,
  parseGrantFields,
  sha256,
  signingInput,
  type CborValue,
} from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";

export interface ArgumentVector {
  name: string;
  description: string;
  args: ToolArguments[];
  tool: string;
  /** The call's arguments as JSON text, read by spec/arguments.md §6.4. */
  arguments: string;
  expected: null | { reason: string; argument: string | null; pattern: string | null };
}

/** The decision of this implementation, in the vectors' shape. */
export function evaluateArgumentVector(
  vector: Pick<ArgumentVector, "args" | "tool" | "arguments">,
): ArgumentVector["expected"] {
  const denial = checkArgumentsJson(vector.args, vector.tool, vector.arguments);
  return denial === null
    ? null
    : { reason: denial.reason, argument: denial.argument, pattern: denial.pattern };
}

/** Args as a caller writes them, read into canonical order (so the JSON is the §3.2 form). */
function canonical(args: readonly unknown[]): ToolArguments[] {
  return parseGrantFields({ args }).args as ToolArguments[];
}

const MAIL = canonical([
  {
    tool: "mail.send",
    constraints: [
      { name: "to", kind: "emailDomain", domains: ["example.com", "*.corp.example"] },
      { name: "subject", kind: "maxLength", max: 20, optional: true },
      { name: "bcc", kind: "forbidden" },
    ],
  },
  {
    tool: "mail.*",
    constraints: [{ name: "to", kind: "emailDomain", domains: ["*.example.com", "example.com"] }],
    allowUnnamed: true,
  },
]);
const FILES = canonical([
  {
    tool: "fs.write",
    constraints: [
      { name: "path", kind: "glob", glob: "/tmp/out/**" },
      { name: "name", kind: "glob", glob: "reports/*.csv" },
    ],
  },
]);
const HTTP = canonical([
  {
    tool: "http.get",
    constraints: [
      {
        name: "url",
        kind: "url",
        urls: ["https://api.example.com/v1", "https://*.cdn.example/", "http://10.0.0.1:8080/"],
      },
    ],
  },
]);
const VALUES = canonical([
  {
    tool: "page.get",
    constraints: [
      { name: "n", kind: "range", min: 1, max: 10 },
      { name: "mode", kind: "oneOf", values: ["fast", "slow", 0, false] },
      { name: "dry", kind: "exact", value: true },
      { name: "name", kind: "exact", value: "café" },
      { name: "tag", kind: "prefix", prefix: "ticket-", optional: true },
    ],
  },
]);

/** Names as long as a wildcard beside them (`db.q` and `db.*`, `x` and `*`): the name wins. */
const SHORT = canonical([
  { tool: "*", constraints: [], allowUnnamed: true },
  { tool: "x", constraints: [{ name: "n", kind: "range", min: 1, max: 3 }] },
  { tool: "db.*", constraints: [], allowUnnamed: true },
  { tool: "db.q", constraints: [{ name: "table", kind: "oneOf", values: ["orders"] }] },
]);

type Case = [name: string, description: string, args: ToolArguments[], tool: string, body: string];

const CASES: Case[] = [
  // ---- which entry applies (§2) ----
  [
    "entry-most-specific",
    "mail.send's own entry applies, not mail.*'s.",
    MAIL,
    "mail.send",
    '{"to":"a@x.corp.example"}',
  ],
  [
    "entry-broader",
    "mail.list falls under mail.*, which allows unnamed arguments.",
    MAIL,
    "mail.list",
    '{"to":"a@b.example.com","limit":5}',
  ],
  [
    "entry-none",
    "No entry covers the tool: args constrain nothing, the body is not even read.",
    MAIL,
    "fs.read",
    "not json",
  ],
  [
    "entry-name-beside-wildcard",
    "db.q's own entry applies, not that of db.*, which is as long: the final * does not count.",
    SHORT,
    "db.q",
    '{"table":"users"}',
  ],
  [
    "entry-name-beside-star",
    "x's own entry applies, not that of *, which is as long.",
    SHORT,
    "x",
    '{"n":9}',
  ],
  [
    "entry-wildcard-beside-name",
    "db.r falls under db.*, which allows unnamed arguments; db.q's entry is not its.",
    SHORT,
    "db.r",
    '{"table":"users"}',
  ],
  ["tool-invalid", "A tool name that is not a TOOL_NAME is refused.", MAIL, "mail..send", "{}"],
  ["tool-fullwidth", "A fullwidth tool name is refused, not folded.", MAIL, "ｍail.send", "{}"],
  // ---- presence and unnamed arguments (§2, §6.2) ----
  ["missing-required", "to is required.", MAIL, "mail.send", '{"subject":"hi"}'],
  ["optional-absent", "subject is optional.", MAIL, "mail.send", '{"to":"a@example.com"}'],
  [
    "forbidden-present",
    "bcc is forbidden, whatever its value.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","bcc":null}',
  ],
  [
    "unnamed-closed",
    "An argument no constraint names is refused under a closed entry.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","cc":"a@example.com"}',
  ],
  [
    "unnamed-open",
    "An open entry allows an unnamed argument with a valid name.",
    MAIL,
    "mail.list",
    '{"to":"a@example.com","cc":"x@evil.example"}',
  ],
  [
    "unnamed-case",
    "An open entry refuses a name that differs from a constrained one only in ASCII case.",
    MAIL,
    "mail.list",
    '{"to":"a@example.com","TO":"x@evil.example"}',
  ],
  [
    "unnamed-bad-name",
    "An open entry refuses an unnamed argument whose name is not an ARGUMENT_NAME.",
    MAIL,
    "mail.list",
    '{"to":"a@example.com","a.b":1}',
  ],
  [
    "unnamed-order",
    "The first refused unnamed argument in text order is reported.",
    MAIL,
    "mail.send",
    '{"zz":1,"to":"a@example.com","b":1,"aa":1}',
  ],
  [
    "order-constraints-first",
    "Constraints are checked before unnamed arguments.",
    MAIL,
    "mail.send",
    '{"a":1,"to":"x@evil.example"}',
  ],
  [
    "arguments-array",
    "Arguments that are not an object are refused.",
    MAIL,
    "mail.send",
    '[{"to":"a@example.com"}]',
  ],
  ["arguments-null", "null arguments are refused.", MAIL, "mail.send", "null"],
  // ---- JSON bodies (§6.4) ----
  [
    "json-duplicate",
    "A repeated member name is refused.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","to":"x@evil.example"}',
  ],
  [
    "json-duplicate-escaped",
    "Names are compared after unescaping.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","t\\u006f":"x@evil.example"}',
  ],
  [
    "json-duplicate-nested",
    "Repeated names are refused at any depth.",
    MAIL,
    "mail.list",
    '{"to":"a@example.com","o":{"k":1,"k":2}}',
  ],
  ["json-trailing", "Exactly one JSON value.", MAIL, "mail.send", '{"to":"a@example.com"} {}'],
  [
    "json-lone-surrogate",
    "A lone surrogate is refused.",
    MAIL,
    "mail.send",
    '{"to":"a\\ud800@example.com"}',
  ],
  // ---- email (§5.4) ----
  [
    "email-ok",
    "An address in an exact domain.",
    MAIL,
    "mail.send",
    '{"to":"Bob.Smith+tag@example.com"}',
  ],
  [
    "email-case",
    "Domains are compared after ASCII lower-casing.",
    MAIL,
    "mail.send",
    '{"to":"bob@EXAMPLE.COM"}',
  ],
  [
    "email-wildcard",
    "*.corp.example admits names below it.",
    MAIL,
    "mail.send",
    '{"to":"a@eu.corp.example"}',
  ],
  [
    "email-wildcard-apex",
    "*.corp.example does not admit corp.example.",
    MAIL,
    "mail.send",
    '{"to":"a@corp.example"}',
  ],
  [
    "email-suffix-boundary",
    "Suffixes only on label boundaries.",
    MAIL,
    "mail.send",
    '{"to":"a@badexample.com"}',
  ],
  [
    "email-list",
    "An array of addresses, each within.",
    MAIL,
    "mail.send",
    '{"to":["a@example.com","b@x.corp.example"]}',
  ],
  [
    "email-list-outsider",
    "An array with one address outside is refused.",
    MAIL,
    "mail.send",
    '{"to":["a@example.com","x@evil.example"]}',
  ],
  ["email-two-at", "Exactly one @.", MAIL, "mail.send", '{"to":"x@evil.example@example.com"}'],
  [
    "email-percent",
    "% (relaying) is refused in the local part.",
    MAIL,
    "mail.send",
    '{"to":"x%evil.example@example.com"}',
  ],
  [
    "email-display-name",
    "Display names are refused.",
    MAIL,
    "mail.send",
    '{"to":"Bob <bob@example.com>"}',
  ],
  [
    "email-fullwidth",
    "Non-ASCII is refused, not folded.",
    MAIL,
    "mail.send",
    '{"to":"bob@ｅxample.com"}',
  ],
  [
    "email-kelvin",
    "No Unicode case mapping (U+212A is not k).",
    MAIL,
    "mail.send",
    '{"to":"bob@\\u212aorp.example"}',
  ],
  [
    "email-trailing-dot",
    "A trailing dot on the domain is refused.",
    MAIL,
    "mail.send",
    '{"to":"bob@example.com."}',
  ],
  ["email-literal", "Address literals are refused.", MAIL, "mail.send", '{"to":"bob@[10.0.0.1]"}'],
  [
    "maxlength-bytes",
    "maxLength counts UTF-8 bytes: 10 × é is 20 bytes.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","subject":"éééééééééé"}',
  ],
  [
    "maxlength-over",
    "21 bytes is over 20.",
    MAIL,
    "mail.send",
    '{"to":"a@example.com","subject":"ééééééééééa"}',
  ],
  // ---- paths (§5.5) ----
  [
    "glob-deep",
    "** admits any depth below.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/a/b.txt","name":"reports/q1.csv"}',
  ],
  [
    "glob-dir-itself",
    "** needs at least one segment below.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out","name":"reports/q1.csv"}',
  ],
  [
    "glob-star",
    "* matches within one segment.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/x","name":"reports/a/q1.csv"}',
  ],
  [
    "glob-relative",
    "A relative glob does not match an absolute path.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/x","name":"/reports/q1.csv"}',
  ],
  [
    "glob-dotdot",
    ".. is refused.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/../etc/passwd","name":"reports/q1.csv"}',
  ],
  [
    "glob-encoded",
    "% is refused in paths.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/%2e%2e/etc","name":"reports/q1.csv"}',
  ],
  [
    "glob-double-slash",
    "Empty segments are refused.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out//x","name":"reports/q1.csv"}',
  ],
  [
    "glob-trailing-dot",
    "A segment ending in a dot is refused.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out/x.","name":"reports/q1.csv"}',
  ],
  [
    "glob-backslash",
    "Backslashes are refused.",
    FILES,
    "fs.write",
    '{"path":"/tmp/out\\\\..\\\\x","name":"reports/q1.csv"}',
  ],
  [
    "glob-case",
    "Paths are case-sensitive.",
    FILES,
    "fs.write",
    '{"path":"/TMP/out/x","name":"reports/q1.csv"}',
  ],
  // ---- URLs (§5.3) ----
  [
    "url-ok",
    "Within the prefix, with a query.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/items?page=2"}',
  ],
  [
    "url-normalised",
    "Scheme and host lower-cased, default port dropped, escapes upper-cased.",
    HTTP,
    "http.get",
    '{"url":"HTTPS://API.Example.COM:443/v1/a%c3%a9"}',
  ],
  [
    "url-exact-path",
    "The prefix path itself.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1"}',
  ],
  [
    "url-segment-boundary",
    "/v1 does not contain /v10.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v10"}',
  ],
  ["url-empty-path", "An empty path is /.", HTTP, "http.get", '{"url":"https://a.cdn.example"}'],
  [
    "url-port",
    "An explicit non-default port must match.",
    HTTP,
    "http.get",
    '{"url":"http://10.0.0.1:8080/x"}',
  ],
  ["url-port-missing", "Port 80 is not 8080.", HTTP, "http.get", '{"url":"http://10.0.0.1/x"}'],
  [
    "url-userinfo",
    "Userinfo is refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com@evil.example/v1"}',
  ],
  [
    "url-host-suffix",
    "The allowed host as a label of another is refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com.evil.example/v1"}',
  ],
  ["url-ipv4-short", "IPv4 shorthand is refused.", HTTP, "http.get", '{"url":"http://10.1:8080/"}'],
  [
    "url-ipv4-hex",
    "Hexadecimal IPv4 labels are refused.",
    HTTP,
    "http.get",
    '{"url":"http://0x0a.0.0.1:8080/"}',
  ],
  [
    "url-ipv4-number",
    "A bare number is refused.",
    HTTP,
    "http.get",
    '{"url":"http://167772161:8080/"}',
  ],
  [
    "url-backslash",
    "Backslashes are refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com\\\\@evil.example/v1"}',
  ],
  [
    "url-dot-segment",
    "Dot segments are refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/../admin"}',
  ],
  [
    "url-encoded-dot",
    "Escapes of unreserved characters are refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/%2e%2e/admin"}',
  ],
  [
    "url-double-encoded",
    "An escape of % itself is refused: decoded twice, %252e%252e is ..",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/%252e%252e/admin"}',
  ],
  [
    "url-overlong-utf8",
    "Escapes that are not well-formed UTF-8 are refused: a lenient decoder reads %C0%AE as .",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/%C0%AE%C0%AE/admin"}',
  ],
  [
    "url-utf8-escapes",
    "Escapes of well-formed UTF-8 are an ordinary path segment.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1/caf%C3%A9"}',
  ],
  [
    "url-encoded-slash",
    "%2F is refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com/v1%2F..%2Fadmin"}',
  ],
  [
    "url-trailing-dot-host",
    "A trailing dot on the host is refused.",
    HTTP,
    "http.get",
    '{"url":"https://api.example.com./v1"}',
  ],
  ["url-scheme", "Schemes must match.", HTTP, "http.get", '{"url":"http://api.example.com/v1"}'],
  [
    "url-idna",
    "An A-label is compared as ASCII; a U-label is refused.",
    HTTP,
    "http.get",
    '{"url":"https://ä.cdn.example/"}',
  ],
  // ---- values (§6.1) ----
  [
    "values-ok",
    "Every constraint satisfied; 5.0 is the integer 5.",
    VALUES,
    "page.get",
    '{"n":5.0,"mode":0,"dry":true,"name":"café"}',
  ],
  [
    "range-fraction",
    "5.5 is not an integer.",
    VALUES,
    "page.get",
    '{"n":5.5,"mode":0,"dry":true,"name":"café"}',
  ],
  [
    "range-string",
    '"5" is not an integer.',
    VALUES,
    "page.get",
    '{"n":"5","mode":0,"dry":true,"name":"café"}',
  ],
  [
    "range-exponent",
    "1e1 is the integer 10.",
    VALUES,
    "page.get",
    '{"n":1e1,"mode":0,"dry":true,"name":"café"}',
  ],
  [
    "range-overflow",
    "1e400 is not an integer.",
    VALUES,
    "page.get",
    '{"n":1e400,"mode":0,"dry":true,"name":"café"}',
  ],
  [
    "oneof-type",
    'false is in the set; 0 is too, but "0" is not.',
    VALUES,
    "page.get",
    '{"n":1,"mode":"0","dry":true,"name":"café"}',
  ],
  [
    "oneof-bool",
    "false is in the set.",
    VALUES,
    "page.get",
    '{"n":1,"mode":false,"dry":true,"name":"café"}',
  ],
  [
    "exact-bool-number",
    "1 is not true.",
    VALUES,
    "page.get",
    '{"n":1,"mode":"fast","dry":1,"name":"café"}',
  ],
  [
    "exact-nfd",
    "Code points are compared: NFD café is not NFC café.",
    VALUES,
    "page.get",
    '{"n":1,"mode":"fast","dry":true,"name":"cafe\\u0301"}',
  ],
  [
    "prefix-ok",
    "An optional prefix constraint, present.",
    VALUES,
    "page.get",
    '{"n":1,"mode":"fast","dry":true,"name":"café","tag":"ticket-9"}',
  ],
  [
    "prefix-case",
    "Prefixes are case-sensitive.",
    VALUES,
    "page.get",
    '{"n":1,"mode":"fast","dry":true,"name":"café","tag":"Ticket-9"}',
  ],
];

export function buildArgumentVectors(): ArgumentVector[] {
  return CASES.map(([name, description, args, tool, body]) => ({
    name,
    description,
    args,
    tool,
    arguments: body,
    expected: evaluateArgumentVector({ args, tool, arguments: body }),
  }));
}

// ---------------------------------------------------------------------------------------------
// Token vectors: chains whose links state args.

export interface ArgumentChainCase {
  readonly name: string;
  readonly description: string;
  readonly token: Token;
  readonly roots: readonly KeyPair[];
}

const NOW = 1_800_000_000;
const DAY = 86_400;
const text = (s: string) => new TextEncoder().encode(s);
const key = (label: string) => keyPairFromSeed(sha256(text(`allowance-vectors/key/${label}`)));
const nonce = (vector: string, index: number) =>
  sha256(text(`allowance-vectors/nonce/${vector}/${index}`)).subarray(0, 8);

async function chain(name: string, grants: readonly GrantFields[]): Promise<Token> {
  const root = await key("root");
  const holders = await Promise.all(grants.map((_, i) => key(String.fromCharCode(97 + i))));
  let token = mint({
    rootKey: root,
    holder: (holders[0] as KeyPair).publicKey,
    grant: grants[0] as GrantFields,
    nonce: nonce(name, 0),
  });
  for (let i = 1; i < grants.length; i++) {
    token = attenuate(token, {
      holderKey: holders[i - 1] as KeyPair,
      holder: (holders[i] as KeyPair).publicKey,
      grant: grants[i] as GrantFields,
      nonce: nonce(name, i),
    });
  }
  return token;
}

/** A link appended by hand after `token` (whose leaf is held by `signer`): any args CBOR. */
async function appendArgs(
  name: string,
  token: Token,
  signer: KeyPair,
  args: CborValue,
): Promise<Token> {
  const holder = await key("z");
  const payload = encodeCanonical(
    new Map<number, CborValue>([
      [1, holder.publicKey],
      [2, nonce(name, token.links.length)],
      [15, args],
    ]),
  );
  const digest = parentDigest(token.links[token.links.length - 1] as Link);
  const link: Link = {
    payload,
    signature: nodeBackend.sign(signer.privateKey, signingInput(digest, payload)),
  };
  return { rootKid: token.rootKid, links: [...token.links, link] };
}

/** The same, from args in the library's shape (so: canonical, but unchecked against the parent). */
async function appendGrant(name: string, token: Token, signer: KeyPair, grant: GrantFields) {
  const holder = await key("z");
  const payload = encodePayload({
    ...parseGrantFields(grant),
    sub: holder.publicKey,
    nonce: nonce(name, token.links.length),
  });
  const digest = parentDigest(token.links[token.links.length - 1] as Link);
  const link: Link = {
    payload,
    signature: nodeBackend.sign(signer.privateKey, signingInput(digest, payload)),
  };
  return { rootKid: token.rootKid, links: [...token.links, link] };
}

const ROOT_ARGS: GrantFields = {
  exp: NOW + DAY,
  args: [
    {
      tool: "mail.*",
      constraints: [
        { name: "to", kind: "emailDomain", domains: ["example.com", "*.example.com"] },
        { name: "subject", kind: "maxLength", max: 200, optional: true },
      ],
      allowUnnamed: true,
    },
    {
      tool: "fs.write",
      constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }],
    },
  ],
};

export async function argumentChainCases(): Promise<ArgumentChainCase[]> {
  const root = await key("root");
  const a = await key("a");
  const cases: ArgumentChainCase[] = [];
  const add = (name: string, description: string, token: Token) =>
    cases.push({ name, description, token, roots: [root] });

  add(
    "valid-args-narrowed",
    "args narrowed twice: a domain dropped, an entry closed, a more specific tool added within.",
    await chain("valid-args-narrowed", [
      ROOT_ARGS,
      {
        args: [
          {
            tool: "mail.*",
            constraints: [
              { name: "to", kind: "emailDomain", domains: ["example.com"] },
              { name: "subject", kind: "maxLength", max: 100 },
              { name: "body", kind: "maxLength", max: 10_000, optional: true },
            ],
          },
          { tool: "fs.write", constraints: [{ name: "path", kind: "glob", glob: "/tmp/out/**" }] },
        ],
      },
      {
        args: [
          {
            tool: "mail.*",
            constraints: [
              { name: "to", kind: "emailDomain", domains: ["example.com"] },
              { name: "subject", kind: "maxLength", max: 100 },
              { name: "body", kind: "forbidden" },
            ],
          },
          {
            tool: "mail.send",
            constraints: [
              { name: "to", kind: "exact", value: "ops@example.com" },
              { name: "subject", kind: "oneOf", values: ["alert", "report"] },
            ],
          },
          {
            tool: "fs.write",
            constraints: [{ name: "path", kind: "glob", glob: "/tmp/out/*.csv" }],
          },
        ],
      },
    ]),
  );
  add(
    "valid-args-every-kind",
    "A root stating one constraint of every kind, optional ones, and an open entry.",
    await chain("valid-args-every-kind", [
      {
        exp: NOW + DAY,
        args: [
          {
            tool: "demo",
            constraints: [
              { name: "exact-text", kind: "exact", value: "café" },
              { name: "exact-int", kind: "exact", value: 42 },
              { name: "exact-bool", kind: "exact", value: false, optional: true },
              { name: "one-of", kind: "oneOf", values: [true, "b", 7, "a", 2 ** 40] },
              { name: "range", kind: "range", min: 0, max: 2 ** 53 - 1 },
              { name: "prefix", kind: "prefix", prefix: "ticket-" },
              { name: "glob", kind: "glob", glob: "/srv/*/logs/**" },
              {
                name: "url",
                kind: "url",
                urls: ["https://*.example.com/", "http://10.0.0.1:8080/a%C3%A9"],
              },
              { name: "email", kind: "emailDomain", domains: ["*.corp.example", "example.com"] },
              { name: "max-length", kind: "maxLength", max: 0, optional: true },
              { name: "forbidden", kind: "forbidden" },
            ],
            allowUnnamed: true,
          },
          { tool: "*", constraints: [] },
        ],
      },
    ]),
  );
  add(
    "valid-args-inherited",
    "A child stating no args inherits its parent's; the next one narrows them.",
    await chain("valid-args-inherited", [
      ROOT_ARGS,
      { usdMicros: 1_000_000 },
      {
        args: [
          {
            tool: "mail.*",
            constraints: [{ name: "to", kind: "exact", value: "a@b.example.com" }],
          },
          { tool: "fs.write", constraints: [{ name: "path", kind: "exact", value: "/tmp/x" }] },
        ],
      },
    ]),
  );

  const base = await chain("args-base", [ROOT_ARGS]);
  const widened = async (name: string, description: string, grant: GrantFields) =>
    add(name, description, await appendGrant(name, base, a, grant));
  await widened(
    "invalid-args-widened-domain",
    "A child adding a domain its parent does not allow, correctly signed.",
    {
      args: [
        {
          tool: "mail.*",
          constraints: [
            { name: "to", kind: "emailDomain", domains: ["example.com", "evil.example"] },
            { name: "subject", kind: "maxLength", max: 200, optional: true },
          ],
          allowUnnamed: true,
        },
        { tool: "fs.write", constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }] },
      ],
    },
  );
  await widened("invalid-args-opened", "A child allowing unnamed arguments under a closed entry.", {
    args: [
      {
        tool: "mail.*",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["example.com"] },
          { name: "subject", kind: "forbidden" },
        ],
        allowUnnamed: true,
      },
      {
        tool: "fs.write",
        constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }],
        allowUnnamed: true,
      },
    ],
  });
  await widened(
    "invalid-args-dropped",
    "A child stating args without its parent's fs.write entry.",
    {
      args: [
        {
          tool: "mail.*",
          constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
          allowUnnamed: true,
        },
      ],
    },
  );
  await widened(
    "invalid-args-kind-changed",
    "A child replacing a glob by a prefix, which accepts /tmp/../etc.",
    {
      args: [
        {
          tool: "mail.*",
          constraints: [
            { name: "to", kind: "emailDomain", domains: ["example.com"] },
            { name: "subject", kind: "forbidden" },
          ],
        },
        { tool: "fs.write", constraints: [{ name: "path", kind: "prefix", prefix: "/tmp/" }] },
      ],
    },
  );
  await widened("invalid-args-made-optional", "A child making a required argument optional.", {
    args: [
      {
        tool: "mail.*",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["example.com"], optional: true },
          { name: "subject", kind: "forbidden" },
        ],
      },
      { tool: "fs.write", constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }] },
    ],
  });

  await widened(
    "invalid-args-case-variant-name",
    "A child constraining To in an open entry whose parent constrains to: the parent refuses To.",
    {
      args: [
        {
          tool: "mail.*",
          constraints: [
            { name: "To", kind: "exact", value: "eve@evil.example" },
            { name: "to", kind: "emailDomain", domains: ["example.com", "*.example.com"] },
            { name: "subject", kind: "maxLength", max: 200, optional: true },
          ],
          allowUnnamed: true,
        },
        { tool: "fs.write", constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }] },
      ],
    },
  );

  const short = await chain("args-short-base", [
    {
      exp: NOW + DAY,
      args: [
        { tool: "db.*", constraints: [], allowUnnamed: true },
        { tool: "db.q", constraints: [{ name: "table", kind: "oneOf", values: ["orders"] }] },
      ],
    },
  ]);
  add(
    "invalid-args-name-beside-wildcard",
    "A child keeping db.* (open) but dropping db.q's entry, which applies to db.q although as long.",
    await appendGrant("invalid-args-name-beside-wildcard", short, a, {
      args: [{ tool: "db.*", constraints: [], allowUnnamed: true }],
    }),
  );

  const raw = async (name: string, description: string, args: CborValue) =>
    add(name, description, await appendArgs(name, base, a, args));
  const entry = (...pairs: [number | string, CborValue][]) =>
    new Map<string, CborValue>([["t", new Map(pairs)]]);
  await raw(
    "invalid-args-unknown-kind",
    "A constraint of kind 10, which does not exist.",
    entry(["x", [10]]),
  );
  await raw("invalid-args-arity", "A range with one bound.", entry(["x", [3, 1]]));
  await raw("invalid-args-boolean", "A boolean written [2].", entry(["x", [1, [2]]]));
  await raw(
    "invalid-args-url-not-normal",
    "A URL prefix with an upper-case host: not in normal form.",
    entry(["x", [6, ["https://API.example.com/"]]]),
  );
  await raw(
    "invalid-args-optional-forbidden",
    "A forbidden argument listed as optional.",
    entry([2, ["x"]], ["x", [9]]),
  );
  await raw(
    "invalid-args-unsorted-set",
    "Domains out of canonical order, correctly signed.",
    entry(["x", [7, ["b.example", "a.example"]]]),
  );
  await raw(
    "invalid-args-list-limit",
    "65 entries: more than the 64-entry limit.",
    new Map(Array.from({ length: 65 }, (_, i) => [`t${i}`, new Map()])),
  );
  return cases;
}
