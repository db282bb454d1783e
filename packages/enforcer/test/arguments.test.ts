/**
 * Tool-argument constraints at the enforcer (spec/enforcement.md §2.1 step 5, spec/arguments.md
 * §6): a tool call's arguments are checked against the chain's effective `args` before anything is
 * held, on every ledger, and check() answers what reserve() decides.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
  type KeyPair,
  type ToolArguments,
} from "@allowance/core";
import {
  DENY_REASONS,
  Enforcer,
  MemoryLedger,
  type CheckResult,
  type Decision,
  type Ledger,
  type ReserveRequest,
} from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { Clock, T0, clockOption, family } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-arguments-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

let redis: Redis | undefined;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

function freshRedis(now?: () => number): Ledger {
  if (redis === undefined) throw new Error("no Redis");
  const connection = redis;
  const prefix = freshPrefix();
  return Object.assign(new RedisLedger(connection, { keyPrefix: prefix, ...clockOption(now) }), {
    close: () => deleteKeys(connection, prefix),
  });
}

/** Each ledger, whether it has the `…Sync` methods, and how many random cases it is given. */
const ledgers: readonly (readonly [string, (now?: () => number) => Ledger, boolean, number])[] = [
  ["memory", (now) => new MemoryLedger(clockOption(now)), true, 200],
  [
    "sqlite",
    (now) => SqliteLedger.open(join(dir, `ledger-${files++}.db`), clockOption(now)),
    true,
    100,
  ],
  ...(redisUrl === "" ? [] : [["redis", freshRedis, false, 60] as const]),
];

/** The mailer of the demo: it may mail only @example.com, and search anything. */
const MAILER_ARGS: ToolArguments[] = [
  {
    tool: "email.send",
    constraints: [
      { name: "to", kind: "emailDomain", domains: ["example.com"] },
      { name: "body", kind: "maxLength", max: 1000, optional: true },
    ],
  },
];
const TO_EXAMPLE = MAILER_ARGS[0]!.constraints[0];

/** A chain of root grant then one link per further grant, each link signed by the previous holder. */
async function chainOf(grants: readonly GrantFields[]): Promise<VerifiedChain> {
  const keys = await Promise.all(grants.map(() => generateKeyPair()));
  const root = await generateKeyPair();
  const now = Math.floor(T0 / 1000);
  let token = mint({
    rootKey: root,
    holder: publicKeyOf(keys[0] as KeyPair),
    grant: { exp: now + 86400, ...grants[0] },
  });
  for (let i = 1; i < grants.length; i++)
    token = attenuate(token, {
      holderKey: keys[i - 1] as KeyPair,
      holder: publicKeyOf(keys[i] as KeyPair),
      grant: grants[i] as GrantFields,
    });
  return verify(token, { roots: trustedRoots([root]), now: () => now * 1000 });
}

/** Every line's `held` of the chain: nothing may be held by a denied call. */
async function held(enforcer: Enforcer, chain: VerifiedChain): Promise<number> {
  const report = await enforcer.remaining(chain);
  return report.links.flatMap((l) => l.limits).reduce((sum, l) => sum + l.held, 0);
}

/** Everything but `fits`: the part of check's answer that reserve also gives. */
function comparable(result: CheckResult): unknown {
  const { fits: _fits, ...rest } = result;
  return rest;
}

function expected(decision: Decision): unknown {
  if (decision.decision === "DENY") return decision;
  const { reservationId: _id, expiresAt: _expires, ...rest } = decision;
  return rest;
}

describe("the deny reasons", () => {
  it("include ARGUMENT_NOT_ALLOWED, after TOOL_NOT_ALLOWED", () => {
    expect(DENY_REASONS.indexOf("ARGUMENT_NOT_ALLOWED")).toBe(
      DENY_REASONS.indexOf("TOOL_NOT_ALLOWED") + 1,
    );
    expect(Object.isFrozen(DENY_REASONS)).toBe(true);
  });
});

describe.each(ledgers)("argument constraints on the %s ledger", (_name, make, sync, numRuns) => {
  /** A fresh enforcer on `make()`'s ledger; the ledger is closed after `run`. */
  async function withEnforcer(run: (enforcer: Enforcer, clock: Clock) => Promise<void>) {
    const clock = new Clock();
    const ledger = make(clock.now);
    try {
      await run(new Enforcer({ ledger, now: clock.now }), clock);
    } finally {
      await ledger.close();
    }
  }

  it("allows a mail to @example.com and denies one to another domain, naming link, tool, argument and constraint, holding nothing", async () => {
    const { children } = await family({ usdMicros: 1_000_000, tools: ["email.send", "search.*"] }, [
      { usdMicros: 500_000, args: MAILER_ARGS },
    ]);
    const chain = children[0]!;
    await withEnforcer(async (enforcer) => {
      const denied: unknown[] = [];
      enforcer.on("denied", (event) => denied.push(event.decision));
      const allowed = await enforcer.reserve({
        chain,
        tool: "email.send",
        usdMicros: 10,
        arguments: { to: "ops@example.com", body: "the build is green" },
      });
      expect(allowed.decision).toBe("ALLOW");
      if (allowed.decision === "DENY") return;
      await enforcer.release(allowed.reservationId);

      const request: ReserveRequest = {
        chain,
        tool: "email.send",
        usdMicros: 10,
        arguments: { to: "boss@evil.example", body: "the keys" },
      };
      const checked = await enforcer.check(request);
      const decision = await enforcer.reserve(request);
      const want = {
        decision: "DENY",
        reason: "ARGUMENT_NOT_ALLOWED",
        linkIndex: 1,
        linkId: chain.linkIds[1],
        field: "args.email.send.to",
        argumentDenial: {
          tool: "email.send",
          pattern: "email.send",
          argument: "to",
          constraint: TO_EXAMPLE,
          reason: "value",
        },
      };
      expect(decision).toMatchObject(want);
      expect(checked).toMatchObject(want);
      expect(comparable(checked)).toEqual(expected(decision));
      expect(decision.decision === "DENY" && decision.detail).toBe(
        "the arguments of tool email.send are not allowed by link 1's grant: to has domain evil.example, not one allowed (args.email.send.to: emailDomain example.com)",
      );
      // reserve raised `denied`; check, a question, did not.
      expect(denied).toEqual([decision]);
      expect(await held(enforcer, chain)).toBe(0);
      if (sync) {
        expect(enforcer.checkSync(request)).toEqual(checked);
        expect(enforcer.reserveSync(request)).toEqual(decision);
      }
    });
  });

  it("blames the last link that states args, the one whose constraints are in force", async () => {
    const wide: ToolArguments[] = [
      {
        tool: "email.send",
        constraints: [
          { name: "to", kind: "emailDomain", domains: ["*.example.com", "example.com"] },
          { name: "body", kind: "maxLength", max: 5000, optional: true },
        ],
      },
    ];
    const chain = await chainOf([{ tools: ["email.send"], args: wide }, { args: MAILER_ARGS }, {}]);
    await withEnforcer(async (enforcer) => {
      const request: ReserveRequest = {
        chain,
        tool: "email.send",
        arguments: { to: "a@eu.example.com" },
      };
      const decision = await enforcer.reserve(request);
      expect(decision).toMatchObject({
        reason: "ARGUMENT_NOT_ALLOWED",
        linkIndex: 1,
        linkId: chain.linkIds[1],
        field: "args.email.send.to",
      });
      expect(await enforcer.check(request)).toMatchObject({ linkIndex: 1 });
    });
  });

  it("fails closed on absent arguments: they count as {}, so a required argument is missing", async () => {
    const chain = await chainOf([{ tools: ["*"] }, { args: MAILER_ARGS }]);
    await withEnforcer(async (enforcer) => {
      for (const request of [
        { chain, tool: "email.send" },
        { chain, tool: "email.send", arguments: {} },
      ] satisfies ReserveRequest[]) {
        expect(await enforcer.check(request)).toMatchObject({
          decision: "DENY",
          reason: "ARGUMENT_NOT_ALLOWED",
          field: "args.email.send.to",
          argumentDenial: { reason: "missing", argument: "to", constraint: TO_EXAMPLE },
        });
        expect(await enforcer.reserve(request)).toMatchObject({ reason: "ARGUMENT_NOT_ALLOWED" });
      }
      // Only optional constraints, or none: absent arguments are allowed, as {} is.
      const open = await chainOf([
        { tools: ["*"] },
        {
          args: [
            { tool: "list", constraints: [] },
            {
              tool: "search",
              constraints: [{ name: "q", kind: "maxLength", max: 10, optional: true }],
            },
          ],
        },
      ]);
      expect(await enforcer.reserve({ chain: open, tool: "list" })).toMatchObject({
        decision: "ALLOW",
      });
      expect(await enforcer.reserve({ chain: open, tool: "search" })).toMatchObject({
        decision: "ALLOW",
      });
      expect(
        await enforcer.reserve({ chain: open, tool: "list", arguments: { all: true } }),
      ).toMatchObject({
        reason: "ARGUMENT_NOT_ALLOWED",
        field: "args.list.all",
        argumentDenial: { reason: "unnamed", argument: "all", constraint: null },
      });
    });
  });

  it("checks the grant's other limits first and the budget after: expiry and tools win, a budget never hides an argument", async () => {
    const chain = await chainOf([
      { tools: ["email.send", "search.*"], usdMicros: 100 },
      { args: MAILER_ARGS },
    ]);
    await withEnforcer(async (enforcer, clock) => {
      const bad = { to: "x@evil.example" };
      expect(await enforcer.reserve({ chain, tool: "deploy", arguments: bad })).toMatchObject({
        reason: "TOOL_NOT_ALLOWED",
      });
      expect(
        await enforcer.reserve({ chain, tool: "email.send", usdMicros: 1_000, arguments: bad }),
      ).toMatchObject({ reason: "ARGUMENT_NOT_ALLOWED" });
      expect(
        await enforcer.reserve({
          chain,
          tool: "email.send",
          usdMicros: 1_000,
          arguments: { to: "a@example.com" },
        }),
      ).toMatchObject({ reason: "BUDGET_USD" });
      // A tool no entry covers is not constrained by args, whatever its arguments.
      expect(
        await enforcer.reserve({ chain, tool: "search.web", arguments: "not an object" }),
      ).toMatchObject({ decision: "ALLOW" });
      clock.advance(86_400);
      expect(await enforcer.reserve({ chain, tool: "email.send", arguments: bad })).toMatchObject({
        reason: "EXPIRED",
      });
    });
  });

  it("refuses arguments without a tool with a TypeError, holding nothing", async () => {
    const chain = await chainOf([{ usdMicros: 100 }, { args: MAILER_ARGS }]);
    await withEnforcer(async (enforcer) => {
      const request = { chain, usdMicros: 5, arguments: { to: "a@example.com" } };
      await expect(enforcer.reserve(request)).rejects.toThrow(TypeError);
      await expect(enforcer.check(request)).rejects.toThrow(/"arguments" needs the "tool"/);
      if (sync) expect(() => enforcer.reserveSync(request)).toThrow(TypeError);
      expect(await held(enforcer, chain)).toBe(0);
    });
  });

  it("denies hostile arguments (not an object, arrays, prototypes, huge strings, many keys) and holds nothing", async () => {
    const chain = await chainOf([
      { tools: ["email.send"], usdMicros: 1_000 },
      { args: MAILER_ARGS },
    ]);
    class Mail {
      to = "a@example.com";
    }
    const huge = `${"a".repeat(10_000_000)}@example.com`;
    const manyKeys: Record<string, string> = { to: "a@example.com" };
    for (let i = 0; i < 100_000; i++) manyKeys[`k${i}`] = "x";
    const cases: readonly (readonly [string, unknown, string])[] = [
      ["null", null, "arguments"],
      ["a string", "to=a@example.com", "arguments"],
      ["a number", 42, "arguments"],
      ["a boolean", true, "arguments"],
      ["an array", [{ to: "a@example.com" }], "arguments"],
      ["an empty array", [], "arguments"],
      ["a Map", new Map([["to", "a@example.com"]]), "arguments"],
      ["a class instance", new Mail(), "arguments"],
      ["an inherited value", Object.create({ to: "a@example.com" }), "arguments"],
      ["a __proto__ literal", { __proto__: { to: "a@example.com" } }, "arguments"],
      ["a __proto__ member", JSON.parse('{"__proto__":{"to":"a@example.com"}}'), "missing"],
      [
        "a __proto__ member beside to",
        JSON.parse('{"to":"a@example.com","__proto__":{"to":"a@example.com"}}'),
        "unnamed",
      ],
      ["a constructor member", { to: "a@example.com", constructor: "x" }, "unnamed"],
      ["a recipient list with one outsider", { to: ["a@example.com", "x@evil.example"] }, "value"],
      ["an empty recipient list", { to: [] }, "value"],
      ["a nested recipient list", { to: [["a@example.com"]] }, "value"],
      ["a number for an address", { to: 1 }, "value"],
      ["an object for an address", { to: { toString: () => "a@example.com" } }, "value"],
      ["userinfo and a second domain", { to: "a@example.com@evil.example" }, "value"],
      ["a display name", { to: "Boss <x@evil.example>" }, "value"],
      ["a list in one string", { to: "a@example.com, x@evil.example" }, "value"],
      ["a lookalike domain", { to: "a@example.com.evil.example" }, "value"],
      ["a fullwidth domain", { to: "a@ｅxample.com" }, "value"],
      ["a lone surrogate", { to: "a\ud800@example.com" }, "value"],
      ["a huge address", { to: huge }, "value"],
      ["a huge body", { to: "a@example.com", body: "x".repeat(1001) }, "value"],
      ["a case twin of to", { to: "a@example.com", To: "x@evil.example" }, "unnamed"],
      ["100,000 unnamed keys", manyKeys, "unnamed"],
    ];
    await withEnforcer(async (enforcer) => {
      for (const [what, value, reason] of cases) {
        const request = { chain, tool: "email.send", usdMicros: 1, arguments: value };
        const checked = await enforcer.check(request);
        const decision = await enforcer.reserve(request);
        expect(decision, what).toMatchObject({
          decision: "DENY",
          reason: "ARGUMENT_NOT_ALLOWED",
          linkIndex: 1,
          argumentDenial: { reason },
        });
        expect(comparable(checked), what).toEqual(expected(decision));
        // The detail is one bounded line whatever the arguments held.
        if (decision.decision === "DENY") expect(decision.detail.length, what).toBeLessThan(400);
      }
      expect(await held(enforcer, chain)).toBe(0);
    });
  }, 60_000);

  it("fails closed when reading the arguments throws: the call rejects and nothing is held", async () => {
    const chain = await chainOf([{ tools: ["email.send"], usdMicros: 100 }, { args: MAILER_ARGS }]);
    const getter = Object.defineProperty({}, "to", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    const proxy = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error("boom");
        },
      },
    );
    await withEnforcer(async (enforcer) => {
      for (const value of [getter, proxy]) {
        const request = { chain, tool: "email.send", usdMicros: 5, arguments: value };
        await expect(enforcer.reserve(request)).rejects.toThrow("boom");
        await expect(enforcer.check(request)).rejects.toThrow("boom");
      }
      expect(await held(enforcer, chain)).toBe(0);
    });
  });

  it("law: check and reserve agree on every argument decision, and a denial holds nothing", async () => {
    const chain = await chainOf([
      { tools: ["email.send", "fs.*"], usdMicros: 1_000_000 },
      {
        args: [
          { tool: "email.send", constraints: MAILER_ARGS[0]!.constraints },
          {
            tool: "fs.*",
            constraints: [
              { name: "mode", kind: "oneOf", values: [420, "rw"] },
              { name: "path", kind: "glob", glob: "/tmp/**" },
              { name: "sync", kind: "forbidden" },
            ],
            allowUnnamed: true,
          },
        ],
      },
    ]);
    const text = fc.oneof(
      fc.constantFrom(
        "a@example.com",
        "x@evil.example",
        "A@EXAMPLE.COM",
        "/tmp/a",
        "/tmp/../etc",
        "/tmp",
        "rw",
        "",
      ),
      fc.string({ maxLength: 12 }),
    );
    const value = fc.oneof(
      text,
      fc.integer(),
      fc.constantFrom(420, 420.5, Number.NaN, true, null, undefined),
      fc.array(text, { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 3 }), text, { maxKeys: 2 }),
    );
    const name = fc.constantFrom("to", "body", "mode", "path", "sync", "To", "extra", "__proto__");
    const args = fc.oneof(
      fc.dictionary(name, value, { maxKeys: 4 }),
      fc.constantFrom(undefined, null, "x", 7, [] as unknown[]),
      fc.anything({ maxDepth: 2 }),
    );
    let denials = 0;
    await withEnforcer(async (enforcer) => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("email.send", "fs.write", "fs.read"),
          args,
          async (tool, callArguments) => {
            const request: ReserveRequest = {
              chain,
              tool,
              usdMicros: 1,
              ...(callArguments === undefined ? {} : { arguments: callArguments }),
            };
            const checked = await enforcer.check(request);
            if (sync) expect(enforcer.checkSync(request)).toEqual(checked);
            const decision = await enforcer.reserve(request, { ttl: 1 });
            expect(comparable(checked)).toEqual(expected(decision));
            if (decision.decision === "DENY") {
              expect(decision.reason).toBe("ARGUMENT_NOT_ALLOWED");
              denials++;
            } else {
              await enforcer.release(decision.reservationId);
            }
          },
        ),
        { numRuns },
      );
      expect(await held(enforcer, chain)).toBe(0);
    });
    // The law must have seen denials, not only allows.
    expect(denials).toBeGreaterThan(numRuns * 0.3);
  }, 120_000);
});
