/**
 * Tool-argument constraints (spec/arguments.md): each kind's rule as examples, the encoding and its
 * refusals, the narrowing rule, and the law that a child's constraints never accept a call that
 * its parent's refuse.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  AllowanceError,
  DEFAULT_LIMITS,
  attenuate,
  keyPairFromSeed,
  mint,
  readUnverifiedGrants,
  type EffectiveGrant,
  type GrantFields,
  type KeyPair,
  type LinkGrant,
} from "@allowance/core";
import {
  decodePayload,
  encodeCanonical,
  encodePayload,
  narrow,
  resolveLimits,
  rootEffective,
} from "@allowance/core/format";
import {
  checkArguments,
  checkArgumentsJson,
  narrowArguments,
  readArguments,
  type ArgumentConstraint,
  type ArgumentDenial,
  type ArgumentScalar,
  type ToolArguments,
} from "../src/arguments.js";
import { decodePayloadReference } from "../src/grant.js";
import { decodePayloadFast } from "../src/fast-decode.js";

let keys: KeyPair[] = [];
beforeAll(async () => {
  keys = await Promise.all(
    Array.from({ length: 4 }, (_, i) => keyPairFromSeed(new Uint8Array(32).fill(i + 1))),
  );
});
const key = (i: number): KeyPair => keys[i] as KeyPair;

/** A constraint without its name (Omit over each member of the union). */
type Unnamed = ArgumentConstraint extends infer C
  ? C extends unknown
    ? Omit<C, "name">
    : never
  : never;

/** Rules read as a caller's input would be: validated and in canonical order. */
function rules(input: unknown): ToolArguments[] {
  return readArguments(input, (path, message) => {
    throw new TypeError(`${path} ${message}`);
  });
}

/** One entry for tool `t` with the given constraints (closed unless `open`). */
function entry(constraints: readonly Unnamed[], open = false, tool = "t"): ToolArguments[] {
  const named = constraints.map((c, i) => ({ name: `a${i}`, ...c }));
  return rules([{ tool, constraints: named, ...(open ? { allowUnnamed: true } : {}) }]);
}

/** Does a single-constraint entry accept `value` for argument a0? */
function accepts(constraint: Unnamed, value: unknown): boolean {
  return checkArguments(entry([constraint]), "t", { a0: value }) === null;
}

function violations(parent: ToolArguments[], child: ToolArguments[]): string[] {
  const fields: string[] = [];
  narrowArguments(parent, child, (field) => fields.push(field));
  return fields;
}

describe("each kind accepts exactly what spec/arguments.md §2 says", () => {
  it("exact compares by type and value", () => {
    const c = { kind: "exact", value: "alice" } as const;
    expect(accepts(c, "alice")).toBe(true);
    for (const v of ["Alice", "alice ", "ａｌｉｃｅ", ["alice"], 1, null, true])
      expect(accepts(c, v)).toBe(false);
    expect(accepts({ kind: "exact", value: 5 }, 5)).toBe(true);
    for (const v of ["5", 5.5, -5, true, [5]])
      expect(accepts({ kind: "exact", value: 5 }, v)).toBe(false);
    expect(accepts({ kind: "exact", value: false }, false)).toBe(true);
    for (const v of [0, "false", [false], null])
      expect(accepts({ kind: "exact", value: false }, v)).toBe(false);
  });

  it("oneOf accepts any listed value of its own type", () => {
    const c = { kind: "oneOf", values: ["GET", "HEAD", 1, true] } as const;
    for (const v of ["GET", "HEAD", 1, true]) expect(accepts(c, v)).toBe(true);
    for (const v of ["get", "POST", "1", 1.5, false, 0]) expect(accepts(c, v)).toBe(false);
  });

  it("range accepts integers within its inclusive bounds, however the number is spelt", () => {
    const c = { kind: "range", min: 1, max: 10 } as const;
    for (const v of [1, 10, 5, 5.0, 1e1]) expect(accepts(c, v)).toBe(true);
    for (const v of [0, 11, -1, 5.5, "5", NaN, Infinity, 2 ** 53, null, [5]])
      expect(accepts(c, v)).toBe(false);
  });

  it("prefix accepts strings, and non-empty arrays of strings, starting with it", () => {
    const c = { kind: "prefix", prefix: "ticket-" } as const;
    expect(accepts(c, "ticket-42")).toBe(true);
    expect(accepts(c, ["ticket-1", "ticket-2"])).toBe(true);
    for (const v of ["Ticket-1", "tick", [], ["ticket-1", "x"], ["ticket-1", 1], "ticket-\ud800"])
      expect(accepts(c, v)).toBe(false);
  });

  it("glob accepts paths by segments, with * within one segment and a final ** below", () => {
    const c = (glob: string) => ({ kind: "glob", glob }) as const;
    expect(accepts(c("/tmp/out/**"), "/tmp/out/a.txt")).toBe(true);
    expect(accepts(c("/tmp/out/**"), "/tmp/out/a/b.txt")).toBe(true);
    expect(accepts(c("/tmp/out/**"), "/tmp/out")).toBe(false);
    expect(accepts(c("/tmp/*.log"), "/tmp/app.log")).toBe(true);
    expect(accepts(c("/tmp/*.log"), "/tmp/a/app.log")).toBe(false);
    expect(accepts(c("/tmp/*.log"), "/tmp/.log")).toBe(true);
    expect(accepts(c("/tmp/*"), "/tmp")).toBe(false);
    expect(accepts(c("src/**"), "/src/a")).toBe(false);
    expect(accepts(c("/"), "/")).toBe(true);
  });

  it("url accepts URLs within a prefix after the §5.3 normalisation", () => {
    const c = {
      kind: "url",
      urls: ["https://api.example.com/v1", "https://*.cdn.example/"],
    } as const;
    for (const v of [
      "https://api.example.com/v1",
      "https://api.example.com/v1/x?q=1#f",
      "HTTPS://API.EXAMPLE.COM:443/v1/x",
      "https://a.cdn.example/",
      "https://a.b.cdn.example/x",
      "https://a.cdn.example",
    ])
      expect(accepts(c, v), v).toBe(true);
    for (const v of [
      "https://api.example.com/v10",
      "https://api.example.com/V1",
      "http://api.example.com/v1",
      "https://api.example.com:8443/v1",
      "https://cdn.example/",
      "https://api.example.com.evil/v1",
    ])
      expect(accepts(c, v), v).toBe(false);
  });

  it("emailDomain accepts addresses whose domain a pattern admits, ASCII case folded", () => {
    const c = { kind: "emailDomain", domains: ["example.com", "*.corp.example"] } as const;
    for (const v of [
      "bob@example.com",
      "Bob.Smith+x@EXAMPLE.COM",
      "a@eu.corp.example",
      ["a@example.com"],
    ])
      expect(accepts(c, v), JSON.stringify(v)).toBe(true);
    for (const v of [
      "a@sub.example.com",
      "a@corp.example",
      "a@example.com.evil",
      "Bob <a@example.com>",
    ])
      expect(accepts(c, v), v).toBe(false);
  });

  it("maxLength counts UTF-8 bytes of strings and elements of arrays", () => {
    const c = { kind: "maxLength", max: 3 } as const;
    for (const v of ["", "abc", "é", [1, 2, 3], []]) expect(accepts(c, v)).toBe(true);
    for (const v of ["abcd", "éé", "€a", [1, 2, 3, 4], 123, true, {}, "\ud800"])
      expect(accepts(c, v)).toBe(false);
  });

  it("forbidden refuses the argument whatever its value, and accepts its absence", () => {
    const args = entry([{ kind: "forbidden" }]);
    expect(checkArguments(args, "t", {})).toBeNull();
    expect(checkArguments(args, "t", { a0: null })?.reason).toBe("forbidden");
  });
});

describe("presence and unnamed arguments (spec/arguments.md §2, §6.2)", () => {
  it("refuses a missing required argument and allows a missing optional one", () => {
    expect(checkArguments(entry([{ kind: "maxLength", max: 5 }]), "t", {})?.reason).toBe("missing");
    expect(
      checkArguments(entry([{ kind: "maxLength", max: 5, optional: true }]), "t", {}),
    ).toBeNull();
  });

  it("refuses an argument no constraint names, unless the entry allows unnamed ones", () => {
    const closed = entry([{ kind: "exact", value: 1 }]);
    expect(checkArguments(closed, "t", { a0: 1, note: "x" })).toMatchObject({
      reason: "unnamed",
      argument: "note",
      constraint: null,
    });
    expect(
      checkArguments(entry([{ kind: "exact", value: 1 }], true), "t", { a0: 1, note: "x" }),
    ).toBeNull();
  });

  it("refuses, even in an open entry, a name differing from a constrained one only in ASCII case", () => {
    const open = entry([{ kind: "exact", value: 1 }], true);
    expect(checkArguments(open, "t", { a0: 1, A0: 2 })).toMatchObject({
      reason: "unnamed",
      argument: "A0",
    });
  });

  it("refuses, even in an open entry, an unnamed argument whose name is not an argument name", () => {
    const open = entry([], true);
    for (const name of ["a b", "ｔｏ", "", "a.b", "x".repeat(65)])
      expect(checkArguments(open, "t", { [name]: 1 })?.reason, name).toBe("unnamed");
  });

  it("reports the first refused unnamed argument in text order, whatever the object's key order", () => {
    const closed = entry([]);
    expect(checkArguments(closed, "t", { zz: 1, b: 1, "1": 1, aa: 1 })?.argument).toBe("1");
    expect(checkArguments(closed, "t", { zz: 1, b: 1, aa: 1 })?.argument).toBe("b");
  });

  it("allows only calls without arguments under a closed entry with no constraints", () => {
    expect(checkArguments(entry([]), "t", {})).toBeNull();
    expect(checkArguments(entry([]), "t", undefined)).toBeNull();
    expect(checkArguments(entry([]), "t", { x: 1 })?.reason).toBe("unnamed");
  });

  it("refuses arguments that are not a JSON object, and invalid tool names", () => {
    const open = entry([], true);
    for (const v of [null, [], "x", 1, new Map(), new Date(0)])
      expect(checkArguments(open, "t", v)?.reason).toBe("arguments");
    for (const tool of ["", "t ", "ｔ", "a..b", "a.*", "*"])
      expect(checkArguments(open, tool, {})?.reason).toBe("tool");
  });

  it("constrains nothing when args is absent or no entry covers the tool", () => {
    expect(checkArguments(undefined, "t", "not even an object")).toBeNull();
    expect(checkArguments(entry([{ kind: "forbidden" }]), "other", { a0: 1 })).toBeNull();
  });

  it("applies only the most specific entry covering the tool", () => {
    const args = rules([
      { tool: "*", constraints: [{ name: "x", kind: "forbidden" }] },
      { tool: "fs.*", constraints: [{ name: "path", kind: "glob", glob: "/tmp/**" }] },
      { tool: "fs.write", constraints: [{ name: "path", kind: "glob", glob: "/tmp/out/**" }] },
    ]);
    expect(checkArguments(args, "fs.read", { path: "/tmp/a" })).toBeNull();
    expect(checkArguments(args, "fs.write", { path: "/tmp/a" })?.pattern).toBe("fs.write");
    expect(checkArguments(args, "fs.write", { path: "/tmp/out/a" })).toBeNull();
    expect(checkArguments(args, "http.get", { x: 1 })?.pattern).toBe("*");
  });

  it("applies a name's own entry over a wildcard of the same length (a.b over a.*, x over *)", () => {
    // Length alone ties these; the wildcard sorts first, so a longest-wins scan kept it and the
    // name's constraint was never checked.
    const args = rules([
      { tool: "*", constraints: [], allowUnnamed: true },
      { tool: "x", constraints: [{ name: "n", kind: "exact", value: 1 }] },
      { tool: "a.*", constraints: [], allowUnnamed: true },
      { tool: "a.b", constraints: [{ name: "n", kind: "exact", value: 1 }] },
      { tool: "a.b.*", constraints: [], allowUnnamed: true },
      { tool: "a.b.c", constraints: [{ name: "n", kind: "exact", value: 1 }] },
    ]);
    for (const tool of ["x", "a.b", "a.b.c"]) {
      expect(checkArguments(args, tool, { n: 2 }), tool).toMatchObject({
        pattern: tool,
        argument: "n",
        reason: "value",
      });
      expect(checkArguments(args, tool, { n: 1 }), tool).toBeNull();
    }
    expect(checkArguments(args, "y", { n: 2 })).toBeNull();
    expect(checkArguments(args, "a.c", { n: 2 })).toBeNull();
    expect(checkArguments(args, "a.b.d", { n: 2 })).toBeNull();
    // Narrowing reads the same entries: dropping a.b's entry beside a.* widens it.
    const parent = rules([
      { tool: "a.*", constraints: [], allowUnnamed: true },
      { tool: "a.b", constraints: [{ name: "n", kind: "exact", value: 1 }] },
    ]);
    const child = rules([{ tool: "a.*", constraints: [], allowUnnamed: true }]);
    expect(violations(parent, child)).toEqual(["args.a.b.*", "args.a.b.n"]);
  });

  it("refuses a tool argument that is not a string, and hand-built args that are not valid, with a TypeError", () => {
    expect(() => checkArguments([], 1 as unknown as string, {})).toThrow(TypeError);
    const bad = [{ tool: "t", constraints: [{ name: "a", kind: "range", min: NaN, max: 1 }] }];
    expect(() => checkArguments(bad as unknown as ToolArguments[], "t", {})).toThrow(TypeError);
  });
});

describe("request bodies (spec/arguments.md §6.4)", () => {
  const args = () => entry([{ kind: "emailDomain", domains: ["example.com"] }]);

  it("are read strictly: a repeated name, escaped or not, at any depth, is refused", () => {
    expect(checkArgumentsJson(args(), "t", '{"a0":"a@example.com"}')).toBeNull();
    for (const body of [
      '{"a0":"a@example.com","a0":"x@evil.com"}',
      '{"a0":"x@evil.com","a\\u0030":"a@example.com"}',
      '{"a0":"a@example.com","n":{"k":1,"k":2}}',
      '{"a0":"a@example.com"} x',
      "{'a0':'a@example.com'}",
      '{"a0":"a@example.com",}',
      '{"a0":"\\ud800@example.com"}',
    ])
      expect(checkArgumentsJson(args(), "t", body)?.reason, body).toBe("json");
  });

  it("are UTF-8 when given as bytes", () => {
    expect(
      checkArgumentsJson(args(), "t", new TextEncoder().encode('{"a0":"a@example.com"}')),
    ).toBeNull();
    expect(checkArgumentsJson(args(), "t", Uint8Array.of(0x7b, 0xff, 0x7d))?.reason).toBe("json");
  });

  it("give __proto__ no special meaning", () => {
    expect(
      checkArgumentsJson(args(), "t", '{"a0":"a@example.com","__proto__":{"a0":1}}'),
    ).toMatchObject({
      reason: "unnamed",
      argument: "__proto__",
    });
  });

  it("are not read at all when no entry applies", () => {
    expect(checkArgumentsJson(args(), "other", "not json")).toBeNull();
  });
});

describe("reading and encoding (spec/arguments.md §3)", () => {
  const exp = 2_000_000_000;
  const minted = (grant: GrantFields) =>
    mint({ rootKey: key(0), holder: key(1).publicKey, grant, nonce: new Uint8Array(8) });

  it("round-trips through the payload, in canonical order whatever the input order", () => {
    const input = [
      {
        tool: "mail.send",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["z.example", "a.example"] },
          { name: "cc", kind: "oneOf", values: [true, "b", "a", 3], optional: true },
        ],
      },
      { tool: "*", constraints: [], allowUnnamed: true },
    ];
    const token = minted({ exp, args: input as unknown as ToolArguments[] });
    const [grant] = readUnverifiedGrants(token);
    expect(grant?.args).toEqual([
      { tool: "*", constraints: [], allowUnnamed: true },
      {
        tool: "mail.send",
        constraints: [
          { name: "cc", kind: "oneOf", values: [3, "a", "b", true], optional: true },
          { name: "to", kind: "emailDomain", domains: ["a.example", "z.example"] },
        ],
      },
    ]);
  });

  it("encodes the spec's example in 31 bytes", () => {
    const token = minted({
      exp,
      args: [
        {
          tool: "email.send",
          constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
        },
      ],
    });
    const hex = Buffer.from(token.links[0]?.payload ?? []).toString("hex");
    expect(
      hex.endsWith("0f" + "a16a656d61696c2e73656e64a162746f8207816b6578616d706c652e636f6d"),
    ).toBe(true);
  });

  it.each<[string, unknown]>([
    ["an unknown kind", [{ tool: "t", constraints: [{ name: "a", kind: "regex", regex: "." }] }]],
    [
      "a parameter of another kind",
      [{ tool: "t", constraints: [{ name: "a", kind: "prefix", prefix: "x", max: 1 }] }],
    ],
    ["min above max", [{ tool: "t", constraints: [{ name: "a", kind: "range", min: 2, max: 1 }] }]],
    [
      "a negative bound",
      [{ tool: "t", constraints: [{ name: "a", kind: "range", min: -1, max: 1 }] }],
    ],
    ["a float", [{ tool: "t", constraints: [{ name: "a", kind: "maxLength", max: 1.5 }] }]],
    ["an empty set", [{ tool: "t", constraints: [{ name: "a", kind: "oneOf", values: [] }] }]],
    [
      "a repeated value",
      [{ tool: "t", constraints: [{ name: "a", kind: "oneOf", values: [1, 1] }] }],
    ],
    ["a null value", [{ tool: "t", constraints: [{ name: "a", kind: "exact", value: null }] }]],
    [
      "an optional forbidden",
      [{ tool: "t", constraints: [{ name: "a", kind: "forbidden", optional: true }] }],
    ],
    [
      "optional: false",
      [{ tool: "t", constraints: [{ name: "a", kind: "forbidden", optional: false }] }],
    ],
    [
      "a repeated name",
      [
        {
          tool: "t",
          constraints: [
            { name: "a", kind: "forbidden" },
            { name: "a", kind: "forbidden" },
          ],
        },
      ],
    ],
    [
      "a repeated tool",
      [
        { tool: "t", constraints: [] },
        { tool: "t", constraints: [] },
      ],
    ],
    ["a bad tool pattern", [{ tool: "a*", constraints: [] }]],
    ["a bad argument name", [{ tool: "t", constraints: [{ name: "a.b", kind: "forbidden" }] }]],
    [
      "a URL not in normal form",
      [{ tool: "t", constraints: [{ name: "a", kind: "url", urls: ["https://Example.com/"] }] }],
    ],
    [
      "a URL with a default port",
      [
        {
          tool: "t",
          constraints: [{ name: "a", kind: "url", urls: ["https://example.com:443/"] }],
        },
      ],
    ],
    [
      "a URL prefix with a query",
      [{ tool: "t", constraints: [{ name: "a", kind: "url", urls: ["https://example.com/?a"] }] }],
    ],
    [
      "an IPv4 e-mail domain",
      [{ tool: "t", constraints: [{ name: "a", kind: "emailDomain", domains: ["10.0.0.1"] }] }],
    ],
    [
      "a non-ASCII domain",
      [{ tool: "t", constraints: [{ name: "a", kind: "emailDomain", domains: ["exämple.com"] }] }],
    ],
    [
      "a glob with two stars in a segment",
      [{ tool: "t", constraints: [{ name: "a", kind: "glob", glob: "/a/*b*" }] }],
    ],
    [
      "a glob with ** in the middle",
      [{ tool: "t", constraints: [{ name: "a", kind: "glob", glob: "/a/**/b" }] }],
    ],
    [
      "a lone surrogate",
      [{ tool: "t", constraints: [{ name: "a", kind: "prefix", prefix: "\ud800" }] }],
    ],
    ["allowUnnamed: false", [{ tool: "t", constraints: [], allowUnnamed: false }]],
    ["an unknown entry field", [{ tool: "t", constraints: [], deny: true }]],
    ["an object instead of a list", { t: {} }],
  ])("mint refuses %s with a TypeError", (_name, args) => {
    expect(() => minted({ exp, args: args as ToolArguments[] })).toThrow(TypeError);
  });

  const payloadWith = (argsCbor: unknown): Uint8Array =>
    encodeCanonical(
      new Map<number, never>([
        [1, key(1).publicKey as never],
        [2, new Uint8Array(8) as never],
        [3, exp as never],
        [15, argsCbor as never],
      ]),
    );
  const code = (payload: Uint8Array): string | undefined => {
    try {
      decodePayload(payload, DEFAULT_LIMITS, 0);
      return undefined;
    } catch (error) {
      return (error as AllowanceError).code;
    }
  };
  const entryMap = (...pairs: [number | string, unknown][]) => new Map([["t", new Map(pairs)]]);

  it.each<[string, string, unknown]>([
    ["a valid entry", "valid", entryMap(["a", [9]])],
    ["an empty args map", "valid", new Map()],
    ["an empty entry", "valid", entryMap()],
    ["an array for args", "ERR_MALFORMED", []],
    ["an unknown kind", "ERR_MALFORMED", entryMap(["a", [10]])],
    ["kind 0", "ERR_MALFORMED", entryMap(["a", [0]])],
    ["a wrong arity", "ERR_MALFORMED", entryMap(["a", [3, 1]])],
    ["a boolean [2]", "ERR_MALFORMED", entryMap(["a", [1, [2]]])],
    ["allowUnnamed 0", "ERR_MALFORMED", entryMap([1, 0])],
    ["an unknown entry key", "ERR_MALFORMED", entryMap([3, 1])],
    ["an optional name naming nothing", "ERR_MALFORMED", entryMap([2, ["b"]], ["a", [9]])],
    ["an optional forbidden", "ERR_MALFORMED", entryMap([2, ["a"]], ["a", [9]])],
    ["an empty optional list", "ERR_MALFORMED", entryMap([2, []], ["a", [8, 1]])],
    ["a set out of order", "ERR_NON_CANONICAL", entryMap(["a", [7, ["b.example", "a.example"]]])],
    ["oneOf out of order", "ERR_NON_CANONICAL", entryMap(["a", [2, ["a", 1]]])],
    [
      "optional names out of order",
      "ERR_NON_CANONICAL",
      entryMap([2, ["b", "a"]], ["a", [8, 1]], ["b", [8, 1]]),
    ],
    ["a repeated oneOf value", "ERR_MALFORMED", entryMap(["a", [2, [1, 1]]])],
    [
      "65 entries",
      "ERR_LIMIT",
      new Map(Array.from({ length: 65 }, (_, i) => [`t${i}`, new Map()])),
    ],
    ["a 257-byte prefix", "ERR_LIMIT", entryMap(["a", [4, "x".repeat(257)]])],
  ])("a payload with %s decodes as %s", (_name, expected, argsCbor) => {
    expect(code(payloadWith(argsCbor)) ?? "valid").toBe(expected);
  });

  it("refuses a decoded bytes value the fast path declines as the reference decoder does", () => {
    // Non-ASCII text is left to the reference decoder, which accepts it.
    const payload = payloadWith(entryMap(["a", [1, "café"]]));
    expect(decodePayloadFast(payload, DEFAULT_LIMITS)).toBeUndefined();
    expect(decodePayload(payload, DEFAULT_LIMITS).args?.[0]?.constraints[0]).toEqual({
      name: "a",
      kind: "exact",
      value: "café",
    });
  });
});

describe("narrowing (spec/arguments.md §4)", () => {
  const P = rules([
    {
      tool: "mail.*",
      constraints: [
        { name: "to", kind: "emailDomain", domains: ["*.example.com", "example.com"] },
        { name: "subject", kind: "maxLength", max: 200, optional: true },
      ],
      allowUnnamed: true,
    },
    {
      tool: "fs.write",
      constraints: [
        { name: "path", kind: "glob", glob: "/tmp/**" },
        { name: "mode", kind: "oneOf", values: [420, 384] },
      ],
    },
  ]);

  it("lets a child add constraints, tighten them, close an entry and add tools within", () => {
    const child = rules([
      {
        tool: "mail.*",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["example.com"] },
          { name: "subject", kind: "maxLength", max: 100 },
          { name: "body", kind: "maxLength", max: 1000, optional: true },
        ],
      },
      {
        tool: "mail.send",
        constraints: [
          { name: "to", kind: "exact", value: "ops@eu.example.com" },
          { name: "subject", kind: "forbidden" },
        ],
      },
      {
        tool: "fs.write",
        constraints: [
          { name: "path", kind: "glob", glob: "/tmp/out/*.txt" },
          { name: "mode", kind: "exact", value: 384 },
        ],
      },
    ]);
    expect(violations(P, child)).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    [
      "loosening a domain",
      [
        {
          tool: "mail.*",
          constraints: [
            { name: "to", kind: "emailDomain", domains: ["*.com"] },
            { name: "subject", kind: "maxLength", max: 200, optional: true },
          ],
          allowUnnamed: true,
        },
      ],
      ["args.mail.*.to"],
    ],
    [
      "dropping a constraint",
      [
        {
          tool: "mail.*",
          constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
          allowUnnamed: true,
        },
      ],
      ["args.mail.*.subject"],
    ],
    [
      "making a required argument optional",
      [
        {
          tool: "fs.write",
          constraints: [
            { name: "path", kind: "glob", glob: "/tmp/**", optional: true },
            { name: "mode", kind: "exact", value: 420 },
          ],
        },
      ],
      ["args.fs.write.path"],
    ],
    [
      "opening a closed entry",
      [
        {
          tool: "fs.write",
          constraints: [
            { name: "path", kind: "glob", glob: "/tmp/**" },
            { name: "mode", kind: "exact", value: 420 },
          ],
          allowUnnamed: true,
        },
      ],
      ["args.fs.write.*"],
    ],
    [
      "naming an argument the parent refuses",
      [
        {
          tool: "fs.write",
          constraints: [
            { name: "path", kind: "glob", glob: "/tmp/**" },
            { name: "mode", kind: "exact", value: 420 },
            { name: "force", kind: "exact", value: true, optional: true },
          ],
        },
      ],
      ["args.fs.write.force"],
    ],
    [
      "changing the kind",
      [
        {
          tool: "fs.write",
          constraints: [
            { name: "path", kind: "prefix", prefix: "/tmp/" },
            { name: "mode", kind: "exact", value: 420 },
          ],
        },
      ],
      ["args.fs.write.path"],
    ],
    [
      "a value outside the parent's set",
      [
        {
          tool: "fs.write",
          constraints: [
            { name: "path", kind: "glob", glob: "/tmp/**" },
            { name: "mode", kind: "exact", value: 511 },
          ],
        },
      ],
      ["args.fs.write.mode"],
    ],
    [
      "a more specific entry that is wider",
      [{ tool: "mail.send", constraints: [], allowUnnamed: true }],
      ["args.mail.send.to", "args.mail.send.subject"],
    ],
    [
      "an open entry for a tool under a closed one",
      [{ tool: "*", constraints: [], allowUnnamed: true }],
      [],
    ],
    [
      // The parent's open entry refuses `To` beside its `to` (§6.2); the child would accept it.
      "constraining, in an open entry, a name that differs from a constrained one only in case",
      [
        {
          tool: "mail.*",
          constraints: [
            { name: "To", kind: "exact", value: "eve@evil.example" },
            { name: "to", kind: "emailDomain", domains: ["example.com"] },
            { name: "subject", kind: "maxLength", max: 200, optional: true },
          ],
          allowUnnamed: true,
        },
      ],
      ["args.mail.*.To"],
    ],
    [
      "replacing a constrained name by its other case in an open entry",
      [
        {
          tool: "mail.*",
          constraints: [
            { name: "TO", kind: "emailDomain", domains: ["example.com"] },
            { name: "subject", kind: "maxLength", max: 200, optional: true },
          ],
          allowUnnamed: true,
        },
      ],
      ["args.mail.*.TO", "args.mail.*.to"],
    ],
  ])("%s: violations %j", (_name, childInput, expected) => {
    // The child restates the parent's entries it does not change.
    const child = rules([
      ...P.filter((e) => !(childInput as { tool: string }[]).some((c) => c.tool === e.tool)),
      ...(childInput as unknown[]),
    ]);
    expect(violations(P, child)).toEqual(expected);
  });

  it("refuses a child that drops an entry, for every argument it constrained", () => {
    expect(violations(P, rules([P[0]]))).toEqual([
      "args.fs.write.*",
      "args.fs.write.mode",
      "args.fs.write.path",
    ]);
  });

  it("lets a child under an unconstrained parent state anything, and a child without args inherit", () => {
    expect(violations(rules([]), P)).toEqual([]);
    const parent: EffectiveGrant = { holder: key(1).publicKey, exp: 10, rate: [], args: P };
    const result = narrow(parent, { sub: key(2).publicKey, nonce: new Uint8Array(8) });
    expect(result.ok && result.effective.args).toBe(P);
  });

  it("refuses hand-built args that are not valid with a TypeError, in narrow as in checkArguments", () => {
    const parent: EffectiveGrant = { holder: key(1).publicKey, exp: 10, rate: [], args: P };
    const bad = [
      { tool: "fs.write", constraints: [{ name: "path", kind: "range", min: NaN, max: 1 }] },
    ];
    expect(() =>
      narrow(parent, {
        sub: key(2).publicKey,
        nonce: new Uint8Array(8),
        args: bad as unknown as ToolArguments[],
      }),
    ).toThrow(TypeError);
    const unknownKind = [{ tool: "fs.write", constraints: [{ name: "path", kind: "regex" }] }];
    expect(() =>
      narrow(parent, {
        sub: key(2).publicKey,
        nonce: new Uint8Array(8),
        args: unknownKind as unknown as ToolArguments[],
      }),
    ).toThrow(TypeError);
  });

  it("accepts a short range under a set holding each of its integers, and not a longer one", () => {
    const parent = entry([{ kind: "oneOf", values: [1, 2, 3, 5] }]);
    expect(violations(parent, entry([{ kind: "range", min: 1, max: 3 }]))).toEqual([]);
    expect(violations(parent, entry([{ kind: "range", min: 1, max: 4 }]))).toEqual(["args.t.a0"]);
    expect(violations(parent, entry([{ kind: "range", min: 0, max: 9 }]))).toEqual(["args.t.a0"]);
  });

  it("relates globs, URL prefixes and host patterns exactly (spec/arguments.md §5)", () => {
    const within = (c: Unnamed, p: Unnamed) => violations(entry([p]), entry([c])).length === 0;
    const glob = (glob: string) => ({ kind: "glob", glob }) as const;
    expect(within(glob("/tmp/a/**"), glob("/tmp/**"))).toBe(true);
    expect(within(glob("/tmp/a"), glob("/tmp/**"))).toBe(true);
    expect(within(glob("/tmp/**"), glob("/tmp/**"))).toBe(true);
    expect(within(glob("/tmp/**"), glob("/tmp/*/**"))).toBe(false);
    expect(within(glob("/tmp"), glob("/tmp/**"))).toBe(false);
    expect(within(glob("/tmp/ab*.txt"), glob("/tmp/a*t"))).toBe(true);
    expect(within(glob("/tmp/*.txt"), glob("/tmp/a*.txt"))).toBe(false);
    expect(within(glob("/tmp/*/x"), glob("/tmp/*/*"))).toBe(true);
    const url = (...urls: string[]) => ({ kind: "url", urls }) as const;
    expect(within(url("https://api.example.com/v1/x"), url("https://api.example.com/v1"))).toBe(
      true,
    );
    expect(within(url("https://api.example.com/v10"), url("https://api.example.com/v1"))).toBe(
      false,
    );
    expect(within(url("https://api.example.com/v1"), url("https://api.example.com/v1/"))).toBe(
      false,
    );
    expect(within(url("https://*.a.example.com/"), url("https://*.example.com/"))).toBe(true);
    expect(within(url("https://example.com/"), url("https://*.example.com/"))).toBe(false);
    expect(within(url("https://a.example.com:8443/"), url("https://*.example.com/"))).toBe(false);
    expect(within(url("http://a.example.com/"), url("https://*.example.com/"))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// The law, by property: every call a child's constraints accept, its parent's accept.

const STRINGS = [
  "",
  "a",
  "ab",
  "abc",
  "/tmp/a",
  "/tmp/a/b",
  "/tmp/x.txt",
  "https://api.example.com/v1/x",
  "bob@example.com",
  "bob@a.example.com",
  "bob@evil.com",
];
const INTEGERS = [0, 1, 2, 3, 5, 10, 100];
const scalarArb: fc.Arbitrary<ArgumentScalar> = fc.oneof(
  fc.constantFrom(...STRINGS),
  fc.constantFrom(...INTEGERS),
  fc.boolean(),
);
const GLOBS = [
  "/tmp/**",
  "/tmp/*",
  "/tmp/a",
  "/tmp/*.txt",
  "/tmp/a/**",
  "/**",
  "/*/a",
  "tmp/**",
  "/tmp/a*",
  "/tmp/*a.txt",
  "/",
  "/tmp/a/*",
];
const URLS = [
  "https://api.example.com/",
  "https://api.example.com/v1/",
  "https://api.example.com/v1",
  "https://*.example.com/",
  "https://*.api.example.com/v1/",
  "http://api.example.com/",
  "https://api.example.com:8443/",
  "https://example.com/",
];
const DOMAINS = ["example.com", "*.example.com", "a.example.com", "*.a.example.com", "evil.com"];
const PREFIXES = ["", "a", "ab", "abc", "/tmp/", "/tmp/a", "https://", "bob@"];

const constraintArb = (name: string): fc.Arbitrary<ArgumentConstraint> =>
  fc
    .tuple(
      fc.oneof(
        fc.record({ kind: fc.constant("exact" as const), value: scalarArb }),
        fc.record({
          kind: fc.constant("oneOf" as const),
          values: fc.uniqueArray(scalarArb, { minLength: 1, maxLength: 4 }),
        }),
        fc
          .tuple(fc.nat(12), fc.nat(12))
          .map(([a, b]) => ({ kind: "range" as const, min: Math.min(a, b), max: Math.max(a, b) })),
        fc.record({ kind: fc.constant("prefix" as const), prefix: fc.constantFrom(...PREFIXES) }),
        fc.record({ kind: fc.constant("glob" as const), glob: fc.constantFrom(...GLOBS) }),
        fc.record({
          kind: fc.constant("url" as const),
          urls: fc.uniqueArray(fc.constantFrom(...URLS), { minLength: 1, maxLength: 3 }),
        }),
        fc.record({
          kind: fc.constant("emailDomain" as const),
          domains: fc.uniqueArray(fc.constantFrom(...DOMAINS), { minLength: 1, maxLength: 3 }),
        }),
        fc.record({
          kind: fc.constant("maxLength" as const),
          max: fc.constantFrom(0, 1, 3, 10, 30),
        }),
        fc.constant({ kind: "forbidden" as const }),
      ),
      fc.boolean(),
    )
    .map(
      ([c, optional]) =>
        ({
          name,
          ...c,
          ...(optional && c.kind !== "forbidden" ? { optional: true as const } : {}),
        }) as ArgumentConstraint,
    );

// "To" beside "to": an open entry refuses an unnamed argument that differs from a named one only in
// case (§6.2), so a child naming "To" where its parent named only "to" widens.
const NAMES = ["to", "To", "path", "n", "flag"];
// Short names tie a wildcard's length (`fs.w` and `fs.*`, `x` and `*`): the name must still win.
const TOOLS = ["*", "x", "mail.*", "mail.send", "fs.*", "fs.w", "fs.write"];
const CALLED = ["mail.send", "mail.list", "fs.write", "fs.w", "fs.read", "x", "other"];

const entryArb = (tool: string): fc.Arbitrary<ToolArguments> =>
  fc.tuple(fc.subarray(NAMES), fc.boolean()).chain(([names, open]) =>
    fc.tuple(...names.map(constraintArb)).map((constraints) => ({
      tool,
      constraints,
      ...(open ? { allowUnnamed: true as const } : {}),
    })),
  );

const argsArb: fc.Arbitrary<ToolArguments[]> = fc
  .subarray(TOOLS, { minLength: 1 })
  .chain((tools) => fc.tuple(...tools.map(entryArb)))
  .map((entries) => rules(entries));

/** A child derived from a parent by small edits, so that many children narrow and many do not. */
function childArb(parent: ToolArguments[]): fc.Arbitrary<ToolArguments[]> {
  const edit = fc.oneof(
    fc.record({
      op: fc.constant("replace" as const),
      at: fc.nat(),
      c: fc.constantFrom(...NAMES).chain(constraintArb),
    }),
    fc.record({ op: fc.constant("drop" as const), at: fc.nat() }),
    fc.record({ op: fc.constant("close" as const), at: fc.nat() }),
    fc.record({ op: fc.constant("required" as const), at: fc.nat() }),
    fc.record({
      op: fc.constant("entry" as const),
      tool: fc.constantFrom(...TOOLS, "mail.send.x", "fs.write.y"),
    }),
  );
  return fc.array(edit, { maxLength: 4 }).map((edits) => {
    const entries = parent.map(
      (e) =>
        ({ ...e, constraints: [...e.constraints] }) as {
          tool: string;
          constraints: ArgumentConstraint[];
          allowUnnamed?: true;
        },
    );
    for (const e of edits) {
      const target = entries[("at" in e ? e.at : 0) % Math.max(entries.length, 1)];
      if (e.op === "entry") {
        if (entries.some((x) => x.tool === e.tool)) continue;
        // A new, more specific entry: a copy of what applies there in the parent, if anything.
        const source = [...parent]
          .filter(
            (p) =>
              e.tool === p.tool ||
              p.tool === "*" ||
              (p.tool.endsWith(".*") && e.tool.startsWith(p.tool.slice(0, -1))),
          )
          // Most specific first: a trailing `*` does not count (spec/arguments.md §2).
          .sort((a, b) => b.tool.replace(/\*$/, "").length - a.tool.replace(/\*$/, "").length)[0];
        entries.push({
          tool: e.tool,
          constraints: [...(source?.constraints ?? [])],
          ...(source?.allowUnnamed ? { allowUnnamed: true as const } : {}),
        });
        continue;
      }
      if (target === undefined) continue;
      if (e.op === "replace") {
        target.constraints = [...target.constraints.filter((c) => c.name !== e.c.name), e.c];
      } else if (e.op === "drop") {
        target.constraints.splice(e.at % Math.max(target.constraints.length, 1), 1);
      } else if (e.op === "close") {
        delete target.allowUnnamed;
      } else {
        target.constraints = target.constraints.map((c) => {
          const { optional: _, ...rest } = c as ArgumentConstraint & { optional?: true };
          return rest as ArgumentConstraint;
        });
      }
    }
    return rules(entries);
  });
}

const VALUES: unknown[] = [
  ...STRINGS,
  ...INTEGERS,
  true,
  false,
  -1,
  5.5,
  "5",
  null,
  "/tmp/a.txt",
  "/tmp/xa.txt",
  "/tmp",
  "/etc/passwd",
  "tmp/a",
  "/tmp/a/b/c",
  "https://api.example.com/v1",
  "https://api.example.com/v10",
  "https://x.example.com/",
  "https://a.api.example.com/v1/q",
  "https://api.example.com:8443/v1/",
  "http://api.example.com/v1/",
  "https://example.com/",
  "bob@b.a.example.com",
  ["bob@example.com", "bob@evil.com"],
  ["/tmp/a"],
  ["abc", "ab"],
  [],
  { nested: 1 },
];
const callArb = fc.record({
  tool: fc.constantFrom(...CALLED),
  args: fc.dictionary(fc.constantFrom(...NAMES, "To", "extra"), fc.constantFrom(...VALUES), {
    maxKeys: 5,
  }),
});

describe("the narrowing law (property)", () => {
  it("law: every call a narrower child accepts, its parent accepts", () => {
    let narrower = 0;
    let childAccepted = 0;
    fc.assert(
      fc.property(
        argsArb.chain((parent) =>
          fc.tuple(
            fc.constant(parent),
            childArb(parent),
            fc.array(callArb, { minLength: 20, maxLength: 20 }),
          ),
        ),
        ([parent, child, calls]) => {
          if (violations(parent, child).length > 0) return;
          narrower++;
          for (const call of calls) {
            if (checkArguments(child, call.tool, call.args) !== null) continue;
            childAccepted++;
            expect(
              checkArguments(parent, call.tool, call.args),
              JSON.stringify({ parent, child, call }),
            ).toBeNull();
          }
        },
      ),
      { numRuns: 2000 },
    );
    // Not vacuous: many children narrowed, and many of their calls were accepted.
    expect(narrower).toBeGreaterThan(300);
    expect(childAccepted).toBeGreaterThan(1000);
  });

  it("law: a refused child has a call it accepts that its parent refuses, for one-argument entries of one kind", () => {
    // Completeness within a kind (spec/arguments.md §4.2): searched over the value pool.
    let refused = 0;
    let witnessed = 0;
    fc.assert(
      fc.property(constraintArb("n"), constraintArb("n"), (p, c) => {
        if (p.kind !== c.kind || p.kind === "forbidden" || p.kind === "exact" || p.kind === "oneOf")
          return;
        const parent = rules([{ tool: "t", constraints: [{ ...p, optional: true }] }]);
        const child = rules([{ tool: "t", constraints: [{ ...c, optional: true }] }]);
        if (violations(parent, child).length === 0) return;
        refused++;
        const witness = VALUES.find(
          (v) =>
            checkArguments(child, "t", { n: v }) === null &&
            checkArguments(parent, "t", { n: v }) !== null,
        );
        if (witness !== undefined) witnessed++;
      }),
      { numRuns: 3000 },
    );
    expect(refused).toBeGreaterThan(100);
    // The pool is small, so not every refusal finds its witness there; most do.
    expect(witnessed / refused).toBeGreaterThan(0.5);
  });

  it("law: narrowing never widens down a chain (grandchild accepted ⇒ every ancestor accepts)", () => {
    fc.assert(
      fc.property(
        argsArb.chain((root) =>
          childArb(root).chain((mid) =>
            fc.tuple(
              fc.constant(root),
              fc.constant(mid),
              childArb(mid),
              fc.array(callArb, { minLength: 10, maxLength: 10 }),
            ),
          ),
        ),
        ([root, mid, leaf, calls]) => {
          const holder = key(1).publicKey;
          let effective = rootEffective({
            sub: holder,
            nonce: new Uint8Array(8),
            exp: 10,
            args: root,
          }) as EffectiveGrant;
          const chain = [effective];
          for (const args of [mid, leaf]) {
            const result = narrow(effective, { sub: holder, nonce: new Uint8Array(8), args });
            if (!result.ok) return;
            effective = result.effective;
            chain.push(effective);
          }
          for (const call of calls) {
            if (checkArguments(effective.args, call.tool, call.args) !== null) continue;
            for (const link of chain)
              expect(checkArguments(link.args, call.tool, call.args)).toBeNull();
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("law: checkArguments answers every call without throwing", () => {
    const anything = fc.jsonValue({ maxDepth: 2 });
    fc.assert(
      fc.property(
        argsArb,
        fc.string({ maxLength: 12 }),
        fc.oneof(anything, fc.dictionary(fc.string({ maxLength: 5 }), anything)),
        (args, tool, call) => {
          const result: ArgumentDenial | null = checkArguments(args, tool, call);
          expect(result === null || typeof result.reason === "string").toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("law: args round-trip through the payload, and the fast decoder agrees with the reference", () => {
    fc.assert(
      fc.property(argsArb, (args) => {
        const grant: LinkGrant = { sub: key(1).publicKey, nonce: new Uint8Array(8), exp: 5, args };
        const payload = encodePayload(grant);
        const reference = decodePayloadReference(payload, DEFAULT_LIMITS);
        expect(reference.args).toEqual(args);
        const fast = decodePayloadFast(payload, DEFAULT_LIMITS);
        if (fast !== undefined)
          expect(JSON.stringify(fast.args)).toBe(JSON.stringify(reference.args));
      }),
      { numRuns: 500 },
    );
  });

  it("law: under any limits, the fast decoder accepts only what the reference accepts", () => {
    const limits = fc
      .record({
        maxListLength: fc.integer({ min: 1, max: 4 }),
        maxStringBytes: fc.integer({ min: 1, max: 30 }),
      })
      .map((l) => resolveLimits(l));
    let refused = 0;
    fc.assert(
      fc.property(argsArb, limits, (args, l) => {
        const payload = encodePayload({
          sub: key(1).publicKey,
          nonce: new Uint8Array(8),
          exp: 5,
          args,
        });
        let reference: LinkGrant | undefined;
        try {
          reference = decodePayloadReference(payload, l);
        } catch (error) {
          expect((error as AllowanceError).code).toBe("ERR_LIMIT");
          refused++;
        }
        const fast = decodePayloadFast(payload, l);
        if (reference === undefined) expect(fast).toBeUndefined();
        else if (fast !== undefined)
          expect(JSON.stringify(fast.args)).toBe(JSON.stringify(reference.args));
      }),
      { numRuns: 1000 },
    );
    expect(refused).toBeGreaterThan(100);
  });

  it("law: the fast decoder accepts no mutated args payload the reference refuses", () => {
    fc.assert(
      fc.property(argsArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (args, at, mask) => {
        const payload = encodePayload({
          sub: key(1).publicKey,
          nonce: new Uint8Array(8),
          exp: 5,
          args,
        });
        const mutated = Uint8Array.from(payload);
        const i = 47 + (at % Math.max(payload.length - 47, 1));
        mutated[i] = (mutated[i] as number) ^ mask;
        const fast = decodePayloadFast(mutated, DEFAULT_LIMITS);
        if (fast === undefined) return;
        let reference: LinkGrant | undefined;
        try {
          reference = decodePayloadReference(mutated, DEFAULT_LIMITS);
        } catch {
          reference = undefined;
        }
        expect(reference, Buffer.from(mutated).toString("hex")).toBeDefined();
        expect(JSON.stringify(fast.args)).toBe(JSON.stringify(reference?.args));
      }),
      { numRuns: 3000 },
    );
  });
});

describe("attenuate", () => {
  it("refuses a child whose args widen, with ERR_WIDENED naming the argument", () => {
    const parent = mint({
      rootKey: key(0),
      holder: key(1).publicKey,
      grant: {
        exp: 2_000_000_000,
        args: [
          {
            tool: "mail.send",
            constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
          },
        ],
      },
    });
    let error: unknown;
    try {
      attenuate(parent, {
        holderKey: key(1),
        holder: key(2).publicKey,
        grant: {
          args: [
            {
              tool: "mail.send",
              constraints: [
                { name: "to", kind: "emailDomain", domains: ["example.com", "evil.com"] },
              ],
            },
          ],
        },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AllowanceError);
    expect(error).toMatchObject({ code: "ERR_WIDENED", linkIndex: 1, field: "args.mail.send.to" });
  });
});
