/**
 * Attacks on tool-argument constraints (spec/arguments.md): every spelling an attacker can use to
 * slip a value past a constraint by normalisation — Unicode, path traversal, URL confusion, numbers
 * in other clothes, repeated JSON names, arguments the constraint does not name — is refused.
 * The constraints come from a real chain (minted, attenuated, verified); each case must be denied,
 * never allowed. Counts are printed for the closing notes.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkArguments,
  checkArgumentsJson,
  formatToken,
  type ArgumentDenial,
  type GrantFields,
  type ToolArguments,
} from "@allowance/core";
import { verify } from "@allowance/verifier";
import { buildChain, NOW } from "../support/chain.js";

const counts: Record<string, { tried: number; denied: number }> = {};
let args: readonly ToolArguments[];

/** Records a case and requires its denial. */
function expectDenied(kind: string, label: string, denial: ArgumentDenial | null): void {
  const entry = (counts[kind] ??= { tried: 0, denied: 0 });
  entry.tried++;
  if (denial !== null) entry.denied++;
  expect(denial, `${kind}: ${label} must be denied`).not.toBeNull();
}

beforeAll(async () => {
  // The root allows a wider world; the leaf's constraints are what the cases attack.
  const root: GrantFields = {
    exp: NOW + 3600,
    args: [
      {
        tool: "*",
        constraints: [],
        allowUnnamed: true,
      },
    ],
  };
  const leaf: GrantFields = {
    args: [
      {
        tool: "mail.send",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["example.com", "key.example"] },
          { name: "subject", kind: "maxLength", max: 100, optional: true },
        ],
      },
      {
        tool: "mail.draft",
        constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
        allowUnnamed: true,
      },
      {
        tool: "fs.write",
        constraints: [{ name: "path", kind: "glob", glob: "/tmp/out/**" }],
      },
      {
        tool: "http.get",
        constraints: [{ name: "url", kind: "url", urls: ["https://api.example.com/v1/"] }],
      },
      {
        tool: "http.internal",
        constraints: [
          { name: "url", kind: "url", urls: ["http://10.0.0.1/", "https://*.example.com/"] },
        ],
      },
      {
        tool: "http.tls",
        constraints: [{ name: "url", kind: "url", urls: ["https://api.example.com:8443/"] }],
      },
      {
        tool: "user.get",
        constraints: [
          { name: "name", kind: "exact", value: "café" },
          { name: "role", kind: "oneOf", values: ["admin", "reader"] },
        ],
      },
      // Names as long as a wildcard beside them: each name's own entry must apply.
      { tool: "db.*", constraints: [], allowUnnamed: true },
      { tool: "db.q", constraints: [{ name: "table", kind: "oneOf", values: ["orders"] }] },
      { tool: "x", constraints: [{ name: "table", kind: "oneOf", values: ["orders"] }] },
      { tool: "*", constraints: [], allowUnnamed: true },
      {
        tool: "page.get",
        constraints: [
          { name: "n", kind: "range", min: 1, max: 10 },
          { name: "size", kind: "exact", value: 5 },
          { name: "dry", kind: "exact", value: true },
        ],
      },
    ],
  };
  const fx = await buildChain([root, { tools: ["*"] }, leaf]);
  const chain = verify(formatToken(fx.token), { roots: fx.roots, now: () => NOW * 1000 });
  args = chain.grant.args as readonly ToolArguments[];
  // The baseline: each tool allows its legitimate call, so every denial below is the attack's.
  const ok: [string, Record<string, unknown>][] = [
    ["mail.send", { to: "bob@example.com", subject: "hi" }],
    ["mail.send", { to: "BOB@EXAMPLE.COM" }],
    ["mail.draft", { to: "bob@example.com", body: "x" }],
    ["fs.write", { path: "/tmp/out/report.txt" }],
    ["http.get", { url: "https://api.example.com/v1/items?q=1" }],
    ["http.internal", { url: "http://10.0.0.1/health" }],
    ["http.tls", { url: "https://api.example.com:8443/x" }],
    ["user.get", { name: "café", role: "reader" }],
    ["page.get", { n: 3, size: 5, dry: true }],
    ["db.q", { table: "orders" }],
    ["x", { table: "orders" }],
  ];
  for (const [tool, call] of ok) expect(checkArguments(args, tool, call), tool).toBeNull();
});

afterAll(() => {
  const total = Object.values(counts).reduce((sum, c) => sum + c.tried, 0);
  const denied = Object.values(counts).reduce((sum, c) => sum + c.denied, 0);
  const lines = Object.entries(counts).map(
    ([kind, c]) =>
      `  ${kind.padEnd(28)} ${String(c.tried).padStart(4)} tried, ${String(c.denied).padStart(4)} denied`,
  );
  console.log(`argument attacks: ${total} tried, ${denied} denied\n${lines.join("\n")}`);
});

const mail = (to: unknown) => checkArguments(args, "mail.send", { to });
const path = (p: string) => checkArguments(args, "fs.write", { path: p });
const url = (tool: string, u: string) => checkArguments(args, tool, { url: u });

describe("Unicode: no normalisation, no Unicode case mapping, no width folding", () => {
  it.each([
    ["fullwidth domain", "bob@ｅxample.com"],
    ["fullwidth whole domain", "bob@ＥＸＡＭＰＬＥ.ＣＯＭ"],
    ["ideographic full stop", "bob@example\u3002com"],
    ["fullwidth full stop", "bob@example\uff0ecom"],
    ["Kelvin sign (lower-cases to k)", "bob@\u212aey.example"],
    ["dotless i", "bob@exampl\u0131e.com"],
    ["dotted capital I (lower-cases to i + dot)", "bob@\u0130example.com"],
    ["Cyrillic a", "bob@ex\u0430mple.com"],
    ["zero-width space", "bob@exam\u200bple.com"],
    ["soft hyphen", "bob@exam\u00adple.com"],
    ["combining mark", "bob@example.co\u0301m"],
    ["fullwidth at sign", "bob\uff20example.com"],
    ["non-ASCII local part", "bøb@example.com"],
    ["U-label host", "bob@exämple.com"],
    ["A-label of another name", "bob@xn--exmple-cua.com"],
  ])("email: %s", (label, to) => expectDenied("unicode", label, mail(to)));

  it.each([
    ["fullwidth host letter", "https://ａpi.example.com/v1/"],
    ["ideographic full stop in host", "https://api\u3002example.com/v1/"],
    ["fullwidth solidus in path", "https://api.example.com/v1\uff0f..\uff0fadmin"],
    ["non-ASCII path", "https://api.example.com/v1/ü"],
    ["Kelvin in host", "https://api.\u212aey.com/v1/"],
    ["U-label host (IDNA: refused, never converted)", "https://api.exämple.com/v1/"],
    ["A-label of another name", "https://api.xn--exmple-cua.com/v1/"],
    ["upper-case A-label prefix of another name", "https://api.XN--exmple-cua.com/v1/"],
  ])("url: %s", (label, u) => expectDenied("unicode", label, url("http.get", u)));

  it.each([
    ["fullwidth dots", "/tmp/out/\uff0e\uff0e/etc/passwd"],
    ["one dot leader pair", "/tmp/out/\u2024\u2024/etc"],
    ["division slash", "/tmp/out/..\u2215etc"],
    ["fullwidth directory", "/tmp/ｏut/x"],
  ])("path: %s", (label, p) => expectDenied("unicode", label, path(p)));

  it.each([
    ["NFD against NFC", { name: "cafe\u0301", role: "reader" }],
    ["NFKC ligature", { name: "caf\u00e9", role: "\ufb01" }],
    ["fullwidth value", { name: "café", role: "ａｄｍｉｎ" }],
    ["ASCII case", { name: "café", role: "Admin" }],
    ["Turkish dotless i", { name: "café", role: "adm\u0131n" }],
    ["trailing space", { name: "café", role: "admin " }],
    ["zero-width joiner", { name: "café", role: "ad\u200dmin" }],
  ])("exact and oneOf: %s", (label, call) =>
    expectDenied("unicode", label, checkArguments(args, "user.get", call)),
  );

  it.each([
    ["fullwidth tool name", "ｍail.send"],
    ["tool name with a trailing space", "mail.send "],
    ["tool name with a zero-width space", "mail\u200b.send"],
  ])("tool names: %s", (label, tool) =>
    expectDenied("unicode", label, checkArguments(args, tool, { to: "evil@evil.example" })),
  );
});

describe("path traversal", () => {
  it.each([
    ["..", "/tmp/out/../etc/passwd"],
    [". then ..", "/tmp/out/./../x"],
    ["%2e%2e", "/tmp/out/%2e%2e/etc/passwd"],
    ["%2E%2E", "/tmp/out/%2E%2E/etc"],
    ["double-encoded", "/tmp/out/%252e%252e/etc"],
    ["doubled slash", "/tmp/out//etc/passwd"],
    ["leading doubled slash", "//tmp/out/x"],
    ["trailing slash", "/tmp/out/x/"],
    ["final ..", "/tmp/out/.."],
    ["...", "/tmp/out/.../x"],
    ["trailing dot", "/tmp/out/secret."],
    ["trailing dots", "/tmp/out/x.."],
    ["trailing space", "/tmp/out/x "],
    ["backslash traversal", "/tmp/out\\..\\..\\etc\\passwd"],
    ["backslash in segment", "/tmp/out/..\\x"],
    ["home expansion", "/tmp/out/~/x"],
    ["alternate data stream", "/tmp/out/a.txt:stream"],
    ["NUL byte", "/tmp/out/a\u0000.txt"],
    ["newline", "/tmp/out/a\n/../../etc"],
    ["relative instead of absolute", "tmp/out/x"],
    ["the directory itself", "/tmp/out"],
    ["a glob in the argument", "/tmp/out/*"],
    ["a shell variable", "/tmp/out/$HOME"],
    ["a Windows drive", "C:/tmp/out/x"],
  ])("glob /tmp/out/**: %s", (label, p) => expectDenied("path traversal", label, path(p)));

  it.each([
    ["..", "https://api.example.com/v1/../admin"],
    [".", "https://api.example.com/v1/./x"],
    ["...", "https://api.example.com/v1/.../x"],
    ["%2e%2e", "https://api.example.com/v1/%2e%2e/admin"],
    ["%2E%2E", "https://api.example.com/v1/%2E%2E/admin"],
    [".%2e", "https://api.example.com/v1/.%2e/admin"],
    ["encoded slash", "https://api.example.com/v1/..%2fadmin"],
    ["encoded slash in the prefix", "https://api.example.com/v1%2f..%2fadmin"],
    ["encoded backslash", "https://api.example.com/v1/%5c..%5cadmin"],
    ["doubled slash", "https://api.example.com/v1//admin"],
    ["backslashes", "https://api.example.com/v1\\..\\admin"],
    ["encoded NUL", "https://api.example.com/v1/%00/x"],
    ["double-encoded dots", "https://api.example.com/v1/%252e%252e/admin"],
    ["double-encoded slash", "https://api.example.com/v1/..%252fadmin"],
    ["overlong UTF-8 dots", "https://api.example.com/v1/%C0%AE%C0%AE/admin"],
    ["overlong UTF-8 slash", "https://api.example.com/v1/..%C0%AFadmin"],
    ["three-byte overlong dots", "https://api.example.com/v1/%E0%80%AE%E0%80%AE/x"],
    ["overlong UTF-8, lower case", "https://api.example.com/v1/%c0%ae%c0%ae/admin"],
    ["lone UTF-8 lead byte", "https://api.example.com/v1/%C3/admin"],
    ["UTF-8 broken by an escape", "https://api.example.com/v1/%C3%20%A9/admin"],
    ["UTF-8 surrogate", "https://api.example.com/v1/%ED%A0%80/admin"],
    ["past U+10FFFF", "https://api.example.com/v1/%F4%90%80%80/admin"],
    ["encoded unreserved letter", "https://api.example.com/%761/x"],
  ])("url https://api.example.com/v1/: %s", (label, u) =>
    expectDenied("path traversal", label, url("http.get", u)),
  );
});

describe("URL confusion", () => {
  it.each([
    ["userinfo naming the allowed host", "https://api.example.com@evil.example/v1/"],
    ["userinfo with password", "https://user:pass@api.example.com/v1/"],
    ["port in userinfo", "https://api.example.com:443@evil.example/v1/"],
    ["allowed host as a subdomain of evil", "https://api.example.com.evil.example/v1/"],
    ["allowed host in the path", "https://evil.example/api.example.com/v1/"],
    ["allowed host in the fragment", "https://evil.example#@api.example.com/v1/"],
    ["allowed host in the query", "https://evil.example?@api.example.com/v1/"],
    ["trailing dot on the host", "https://api.example.com./v1/"],
    ["percent-encoded host", "https://api.exa%6dple.com/v1/"],
    ["IPv6 literal", "https://[::1]/v1/"],
    ["backslash after the host", "https://evil.example\\api.example.com/v1/"],
    ["backslash authority", "https:\\\\api.example.com\\v1\\"],
    ["backslash before @", "https://api.example.com\\@evil.example/v1/"],
    ["single slash", "https:/api.example.com/v1/"],
    ["scheme-relative", "//api.example.com/v1/"],
    ["no scheme", "api.example.com/v1/"],
    ["another scheme", "http://api.example.com/v1/"],
    ["javascript scheme", "javascript://api.example.com/v1/%0aalert(1)"],
    ["leading space", " https://api.example.com/v1/"],
    ["tab inside", "https://api.exam\tple.com/v1/"],
    ["newline inside", "https://api.example.com/v1/\nx"],
    ["non-default port 80 on https", "https://api.example.com:80/v1/"],
    ["port with a leading zero", "https://api.example.com:0443/v1/"],
    ["empty port", "https://api.example.com:/v1/"],
    ["port out of range", "https://api.example.com:65979/v1/"],
    ["two fragments", "https://api.example.com/v1/x#a#b"],
    ["quote in the query", 'https://api.example.com/v1/x?a="b"'],
  ])("allowed https://api.example.com/v1/: %s", (label, u) =>
    expectDenied("url confusion", label, url("http.get", u)),
  );

  it.each([
    ["hex and short form (0x7f.1)", "http://0x7f.1/"],
    ["short form (127.1)", "http://127.1/"],
    ["one number", "http://2130706433/"],
    ["octal", "http://0177.0.0.1/"],
    ["leading zero", "http://10.0.0.01/"],
    ["hex quad", "http://0x0a.0x00.0x00.0x01/"],
    ["hex last label", "http://10.0.0.0x1/"],
    ["one hex number", "http://0x0a000001/"],
    ["short form of the allowed address", "http://10.1/"],
    ["out of range", "http://10.0.0.256/"],
    ["five labels", "http://10.0.0.1.1/"],
    ["address under a wildcard", "https://127.0.0.1/"],
    ["trailing dot on the address", "http://10.0.0.1./"],
  ])("allowed http://10.0.0.1/ and https://*.example.com/: %s", (label, u) =>
    expectDenied("url confusion", label, url("http.internal", u)),
  );

  it.each([
    ["default port instead of 8443", "https://api.example.com/"],
    ["explicit 443 instead of 8443", "https://api.example.com:443/"],
    ["another port", "https://api.example.com:8444/"],
  ])("allowed https://api.example.com:8443/: %s", (label, u) =>
    expectDenied("url confusion", label, url("http.tls", u)),
  );

  it.each([
    ["two addresses", "bob@example.com, eve@evil.example"],
    ["display name", "Bob <eve@evil.example>"],
    ["allowed domain in the display name", "bob@example.com <eve@evil.example>"],
    ["two at signs", "eve@evil.example@example.com"],
    ["percent relay", "eve%evil.example@example.com"],
    ["bang path", "evil.example!eve@example.com"],
    ["quoted local part", '"eve@evil.example"@example.com'],
    ["comment", "bob@example.com(eve@evil.example)"],
    ["address literal", "bob@[10.0.0.1]"],
    ["trailing dot", "bob@example.com."],
    ["trailing newline", "bob@example.com\n"],
    ["header injection", "bob@example.com\r\nBcc: eve@evil.example"],
    ["subdomain of an exact domain", "bob@mail.example.com"],
    ["suffix without a label boundary", "bob@badexample.com"],
    ["an array hiding one outsider", ["bob@example.com", "eve@evil.example"]],
    ["an empty array", []],
  ])("email: %s", (label, to) => expectDenied("url confusion", label, mail(to)));
});

describe("numbers as strings or floats, and other types", () => {
  const page = (call: Record<string, unknown>) =>
    checkArguments(args, "page.get", { n: 3, size: 5, dry: true, ...call });
  it.each<[string, Record<string, unknown>]>([
    ["range: a string", { n: "5" }],
    ["range: a padded string", { n: " 5" }],
    ["range: a hex string", { n: "0x5" }],
    ["range: a fraction", { n: 5.5 }],
    ["range: just above the bound", { n: 10.000001 }],
    ["range: below", { n: 0 }],
    ["range: above", { n: 11 }],
    ["range: negative", { n: -1 }],
    ["range: NaN", { n: NaN }],
    ["range: Infinity", { n: Infinity }],
    ["range: 2^53 + 1 rounded", { n: 2 ** 53 }],
    ["range: a boolean", { n: true }],
    ["range: null", { n: null }],
    ["range: an array", { n: [5] }],
    ["range: an object", { n: { value: 5 } }],
    ["exact 5: a string", { size: "5" }],
    ["exact 5: a float", { size: 5.1 }],
    ["exact 5: a boolean", { size: true }],
    ["exact true: 1", { dry: 1 }],
    ["exact true: the string", { dry: "true" }],
    ["exact true: an array", { dry: [true] }],
  ])("%s", (label, call) => expectDenied("numbers and types", label, page(call)));

  it.each([
    ["exponent overflow", '{"n":1e400,"size":5,"dry":true}'],
    ["beyond 2^53", '{"n":9007199254740993,"size":5,"dry":true}'],
    ["negative zero fraction", '{"n":-0.5,"size":5,"dry":true}'],
    ["leading zero", '{"n":05,"size":5,"dry":true}'],
    ["plus sign", '{"n":+5,"size":5,"dry":true}'],
    ["hex literal", '{"n":0x5,"size":5,"dry":true}'],
    ["NaN literal", '{"n":NaN,"size":5,"dry":true}'],
  ])("JSON text: %s", (label, body) =>
    expectDenied("numbers and types", label, checkArgumentsJson(args, "page.get", body)),
  );
});

describe("duplicate JSON names in bodies", () => {
  it.each([
    ["allowed then evil", '{"to":"bob@example.com","to":"eve@evil.example"}'],
    ["evil then allowed", '{"to":"eve@evil.example","to":"bob@example.com"}'],
    ["the same value twice", '{"to":"bob@example.com","to":"bob@example.com"}'],
    ["escaped name", '{"to":"bob@example.com","t\\u006f":"eve@evil.example"}'],
    ["fully escaped name", '{"\\u0074\\u006f":"eve@evil.example","to":"bob@example.com"}'],
    ["nested repeat", '{"to":"bob@example.com","subject":{"a":1,"a":2}}'],
    ["repeat inside an array", '{"to":["bob@example.com"],"subject":[{"a":1,"a":2}]}'],
    ["two JSON values", '{"to":"bob@example.com"}{"to":"eve@evil.example"}'],
    ["prototype member", '{"to":"bob@example.com","__proto__":{"to":"eve@evil.example"}}'],
    ["lone surrogate in a name", '{"to":"bob@example.com","\\ud800":"x"}'],
  ])("%s", (label, body) =>
    expectDenied("duplicate JSON names", label, checkArgumentsJson(args, "mail.send", body)),
  );

  it("bytes that are not UTF-8 are refused as well", () => {
    const bytes = new TextEncoder().encode('{"to":"bob@example.com"}');
    const broken = Uint8Array.from([...bytes.subarray(0, 8), 0xc0, 0xaf, ...bytes.subarray(8)]);
    expectDenied(
      "duplicate JSON names",
      "invalid UTF-8",
      checkArgumentsJson(args, "mail.send", broken),
    );
  });
});

describe("arguments the constraint does not name", () => {
  const closed = (extra: Record<string, unknown>) =>
    checkArguments(args, "mail.send", { to: "bob@example.com", ...extra });
  const open = (extra: Record<string, unknown>) =>
    checkArguments(args, "mail.draft", { to: "bob@example.com", ...extra });
  it.each<[string, Record<string, unknown>]>([
    ["cc outside the domain", { cc: "eve@evil.example" }],
    ["bcc", { bcc: "eve@evil.example" }],
    ["To beside to", { To: "eve@evil.example" }],
    ["to with a trailing space", { "to ": "eve@evil.example" }],
    ["fullwidth to", { ｔｏ: "eve@evil.example" }],
    ["empty name", { "": "eve@evil.example" }],
    ["constructor", { constructor: "x" }],
    ["an unnamed nested object", { options: { to: "eve@evil.example" } }],
  ])("closed entry: %s", (label, extra) => expectDenied("unnamed arguments", label, closed(extra)));

  it.each<[string, Record<string, unknown>]>([
    ["TO beside to", { TO: "eve@evil.example" }],
    ["tO beside to", { tO: "eve@evil.example" }],
    ["fullwidth to", { ｔｏ: "eve@evil.example" }],
    ["name with a NUL", { "to\u0000": "eve@evil.example" }],
    ["name with a dot", { "to.x": "eve@evil.example" }],
    ["name of 65 characters", { ["x".repeat(65)]: 1 }],
  ])("open entry: %s", (label, extra) => expectDenied("unnamed arguments", label, open(extra)));

  it.each<[string, unknown]>([
    ["missing to", {}],
    ["to null", { to: null }],
    ["arguments as an array", [{ to: "bob@example.com" }]],
    ["arguments as a string", '{"to":"bob@example.com"}'],
    ["arguments null", null],
  ])("required and shape: %s", (label, call) =>
    expectDenied("unnamed arguments", label, checkArguments(args, "mail.send", call)),
  );
});

describe("an entry shadowed by a wildcard of the same length", () => {
  // `db.*` and `db.q` are both four characters long, `*` and `x` one: a longest-pattern rule
  // ties them, and the wildcard (sorted first) would apply instead of the name's own entry.
  it.each<[string, string, Record<string, unknown>]>([
    ["db.q beside db.*: another table", "db.q", { table: "users" }],
    ["db.q beside db.*: an extra argument", "db.q", { table: "orders", drop: true }],
    ["x beside *: another table", "x", { table: "users" }],
    ["x beside *: no table", "x", {}],
  ])("%s", (label, tool, call) =>
    expectDenied("entry shadowing", label, checkArguments(args, tool, call)),
  );
});

describe("fuzz: a forbidden character anywhere in an allowed value", () => {
  // Allowed values, each spoilt by inserting one character the grammars of §5 refuse there.
  const allowed: [tool: string, name: string, value: string][] = [
    ["mail.send", "to", "bob@example.com"],
    ["fs.write", "path", "/tmp/out/report.txt"],
    ["http.get", "url", "https://api.example.com/v1/items"],
  ];
  const spoiler = fc.oneof(
    fc.integer({ min: 0x80, max: 0xd7ff }),
    fc.integer({ min: 0xe000, max: 0xffff }),
    fc.integer({ min: 0, max: 0x1f }),
    fc.constantFrom(0x5c, 0x7f),
  );
  it("is denied, wherever it is inserted", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...allowed),
        fc.nat(),
        spoiler,
        ([tool, name, value], at, code) => {
          const i = at % (value.length + 1);
          const spoilt = value.slice(0, i) + String.fromCharCode(code) + value.slice(i);
          expectDenied(
            "fuzz: spoilt values",
            spoilt,
            checkArguments(args, tool, { [name]: spoilt }),
          );
        },
      ),
      { numRuns: 600 },
    );
  });
});
