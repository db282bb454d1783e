/**
 * `allowance check` through the built binary: the enforcer's dry run for one action, against a real
 * SQLite ledger. Its answer is the MCP tool `check_action`'s (the same function, the same shape);
 * exit 0 when allowed, 1 when denied, 2 when the question itself is malformed. Nothing is held.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import {
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify } from "@allowance/verifier";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { checkAction } from "../src/check.js";
import { main } from "../src/program.js";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
let root: KeyPair;
let token: Token;
const POLICY = { tools: { send_email: 10 } };

/** The agent's budget: $2, 100k tokens, 25 risk points; two tools, one of them with argument constraints. */
beforeAll(async () => {
  root = await generateKeyPair();
  const agent = await generateKeyPair();
  writeFileSync(at("root.pub.jwk"), JSON.stringify(await exportPublicJwk(publicKeyOf(root))));
  writeFileSync(at("policy.json"), JSON.stringify(POLICY));
  token = mint({
    rootKey: root,
    holder: publicKeyOf(agent),
    grant: {
      exp: Math.floor(Date.now() / 1000) + 3600,
      usdMicros: 2_000_000,
      tokens: 100_000,
      risk: 25,
      providers: [{ name: "openai" }],
      tools: ["search.*", "send_email"],
      args: [
        {
          tool: "send_email",
          constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
        },
      ],
    },
  });
  writeFileSync(at("agent.token"), formatToken(token));
  // $1.50 spent already.
  const ledger = SqliteLedger.open(at("ledger.db"));
  const enforcer = new Enforcer({ ledger, policy: POLICY });
  const chain = verify(token, { roots: trustedRoots([publicKeyOf(root)]) });
  const hold = await enforcer.reserve({ chain, provider: "openai", usdMicros: 1_500_000 });
  if (hold.decision === "DENY") throw new Error(hold.reason);
  await enforcer.commit(hold.reservationId, { usdMicros: 1_500_000 });
  await ledger.close();
});

afterAll(() => tmp.remove());

/** The token, its roots and the ledger, as every command here names them. */
const agentArgs = () => [
  "--token",
  `@${at("agent.token")}`,
  "--roots",
  at("root.pub.jwk"),
  "--ledger",
  `sqlite:${at("ledger.db")}`,
];
const base = () => ["check", ...agentArgs(), "--policy", at("policy.json")];
const check = (...args: string[]) => allowance([...base(), ...args]);

describe("allowance check", () => {
  it("allows what fits: exit 0, one line, and the JSON answer with what still fits", () => {
    const run = check("--tool", "search.web", "--usd", "0.25");
    expectSuccess(run);
    expect(run.stdout).toBe("allowed: tool search.web ($0.25)\n");
    expect(json(check("--tool", "search.web", "--usd", "0.25", "--json"))).toEqual({
      ok: true,
      allowed: true,
      decision: "ALLOW",
      request: { tokens: 0, usdMicros: 250_000, risk: 0 },
      fits: { tokens: 100_000, usdMicros: 500_000, risk: 25, requests: null },
    });
  });

  it("denies what the ledger's balance does not cover: exit 1, and the denial in words and in fields", () => {
    const run = check("--provider", "openai", "--usd", "0.75");
    expect(run.code).toBe(1);
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(
      /^denied \(BUDGET_USD, link 0, usdMicros\): provider openai \(\$0\.75, 1 token\): this request needs \$0\.75, but this agent has \$0\.50 left of the \$2\.00 its grant allows/,
    );
    const answer = json(check("--provider", "openai", "--usd", "0.75", "--json"));
    expect(answer).toMatchObject({
      ok: true,
      allowed: false,
      decision: "DENY",
      reason: "BUDGET_USD",
      linkIndex: 0,
      field: "usdMicros",
      available: 500_000,
      requested: 750_000,
    });
  });

  it("prices a tool's risk by --policy, and denies a tool, provider or model the grant does not name", () => {
    expect(
      json(check("--tool", "send_email", "--args", '{"to":"ana@example.com"}', "--json")),
    ).toMatchObject({
      allowed: true,
      request: { risk: 10 },
    });
    expect(
      json(
        check("--tool", "send_email", "--risk", "30", "--args", '{"to":"a@example.com"}', "--json"),
      ),
    ).toMatchObject({
      allowed: false,
      reason: "BUDGET_RISK",
    });
    for (const [flag, value, reason] of [
      ["--tool", "delete_everything", "TOOL_NOT_ALLOWED"],
      ["--provider", "anthropic", "PROVIDER_NOT_ALLOWED"],
    ] as const) {
      const run = check(flag, value, "--json");
      expect(run.code).toBe(1);
      expect(json(run)).toMatchObject({ allowed: false, reason });
    }
  });

  it("checks a tool call's arguments against the grant's constraints, read strictly", () => {
    expect(
      json(check("--tool", "send_email", "--args", '{"to":"x@evil.example"}', "--json")),
    ).toMatchObject({
      allowed: false,
      reason: "ARGUMENT_NOT_ALLOWED",
      argumentDenial: { tool: "send_email", argument: "to", reason: "value" },
    });
    // Absent arguments count as {}: the constrained address is missing.
    expect(json(check("--tool", "send_email", "--json"))).toMatchObject({
      allowed: false,
      argumentDenial: { argument: "to", reason: "missing" },
    });
    writeFileSync(at("args.json"), '{"to":"ana@example.com"}');
    expectSuccess(check("--tool", "send_email", "--args", `@${at("args.json")}`));
    // JSON.parse would keep the last "to"; a tool's parser might keep the first.
    expectFailure(
      check("--tool", "send_email", "--args", '{"to":"x@evil.example","to":"ana@example.com"}'),
      2,
      /--args is not one JSON object: .*duplicate/,
    );
    for (const bad of ["[1]", '"to"', "null", "{", '{"to":"a"} {}'])
      expectFailure(check("--tool", "send_email", "--args", bad), 2, /--args/);
    expectFailure(check("--provider", "openai", "--args", "{}"), 2, /give --tool too/);
    // Bytes that are not UTF-8 are refused, as the enforcer refuses such a body (spec/arguments.md
    // §6.4), not read with U+FFFD in their place; so is a byte order mark.
    writeFileSync(
      at("latin1.json"),
      Buffer.concat([
        Buffer.from('{"to":"ana@example.com","to2":"caf'),
        Buffer.from([0xe9, 0x22, 0x7d]),
      ]),
    );
    expectFailure(
      check("--tool", "send_email", "--args", `@${at("latin1.json")}`),
      2,
      /--args file .*latin1\.json is not UTF-8/,
    );
    writeFileSync(at("bom.json"), '\ufeff{"to":"ana@example.com"}');
    expectFailure(check("--tool", "send_email", "--args", `@${at("bom.json")}`), 2, /--args/);
  });

  it("refuses a flag given twice: two tools, two argument objects or two tokens are two questions", () => {
    for (const flags of [
      ["--tool", "delete_everything", "--tool", "search.web"],
      [
        "--tool",
        "send_email",
        "--args",
        '{"to":"x@evil.example"}',
        "--args",
        '{"to":"a@example.com"}',
      ],
      ["--provider", "openai", "--usd", "5", "--usd", "0.01"],
      ["--tool", "search.web", "--token", `@${at("agent.token")}`],
    ]) {
      const all = [...base(), ...flags];
      const name = all.find((word, i) => word.startsWith("--") && all.indexOf(word) !== i);
      expectFailure(check(...flags), 2, new RegExp(`^allowance: ${name ?? "?"} given twice`));
      const run = check(...flags, "--json");
      expect({ code: run.code, answer: json(run) }).toMatchObject({
        code: 2,
        answer: { ok: false, code: "USAGE" },
      });
    }
  });

  it("keeps each answer to its own run: overlapping runs of main in one process exit as each was answered", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const tools = Array.from({ length: 12 }, (_, i) =>
        i % 2 === 0 ? "delete_everything" : "search.web",
      );
      const codes = await Promise.all(tools.map((tool) => main([...base(), "--tool", tool])));
      expect(codes).toEqual(tools.map((tool) => (tool === "search.web" ? 0 : 1)));
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });

  it("asks a model call with no amount as the smallest call: a spent budget answers denied", async () => {
    const enforcer = new Enforcer({ policy: POLICY });
    const chain = verify(token, { roots: trustedRoots([publicKeyOf(root)]) });
    const smallest = { tokens: 1, usdMicros: 1, risk: 0 };
    expect(await checkAction(enforcer, chain, POLICY, { provider: "openai" })).toMatchObject({
      allowed: true,
      request: smallest,
    });
    const hold = await enforcer.reserve({ chain, provider: "openai", usdMicros: 2_000_000 });
    if (hold.decision === "DENY") throw new Error(hold.reason);
    await enforcer.commit(hold.reservationId, { usdMicros: 2_000_000 });
    for (const input of [
      { provider: "openai" },
      { model: "gpt-4o" },
      { provider: "openai", model: "gpt-4o" },
    ])
      expect(
        await checkAction(enforcer, chain, POLICY, input),
        JSON.stringify(input),
      ).toMatchObject({
        allowed: false,
        reason: "BUDGET_USD",
        request: smallest,
      });
    // An amount given is asked as given, the other kind as its smallest: a call of tokens costs
    // dollars too. A tool alone costs what its risk says, no dollars.
    for (const input of [
      { provider: "openai", tokens: 500 },
      { model: "gpt-4o", tokens: 0 },
      { provider: "openai", usd: 0 },
      { provider: "openai", usd: "0", tokens: "0" },
    ])
      expect(
        await checkAction(enforcer, chain, POLICY, input),
        JSON.stringify(input),
      ).toMatchObject({
        allowed: false,
        reason: "BUDGET_USD",
      });
    expect(
      await checkAction(enforcer, chain, POLICY, { provider: "openai", tokens: 5 }),
    ).toMatchObject({ request: { tokens: 5, usdMicros: 1 } });
    expect(await checkAction(enforcer, chain, POLICY, { tool: "search.web" })).toMatchObject({
      allowed: true,
      request: { tokens: 0, usdMicros: 0, risk: 0 },
    });
  });

  it("answers exactly what check_action answers, for the same questions on the same ledger", async () => {
    const ledger = SqliteLedger.open(at("ledger.db"));
    try {
      const enforcer = new Enforcer({ ledger, policy: POLICY });
      const chain = verify(token, { roots: trustedRoots([publicKeyOf(root)]) });
      const questions: { flags: string[]; input: Parameters<typeof checkAction>[3] }[] = [
        {
          flags: ["--tool", "search.web", "--usd", "0.25"],
          input: { tool: "search.web", usd: "0.25" },
        },
        { flags: ["--provider", "openai", "--usd", "3"], input: { provider: "openai", usd: "3" } },
        {
          flags: ["--tool", "send_email", "--tokens", "200k"],
          input: { tool: "send_email", tokens: "200k" },
        },
        {
          flags: ["--model", "gpt-4o", "--tokens", "5k"],
          input: { model: "gpt-4o", tokens: "5k" },
        },
        {
          flags: ["--tool", "send_email", "--args", '{"to":"b@example.com"}'],
          input: { tool: "send_email", arguments: { to: "b@example.com" } },
        },
      ];
      for (const { flags, input } of questions) {
        const run = check(...flags, "--json");
        const expected = await checkAction(enforcer, chain, POLICY, input);
        expect({ flags, answer: json(run) }).toEqual({ flags, answer: expected });
        expect(run.code).toBe(expected.allowed ? 0 : 1);
      }
    } finally {
      await ledger.close();
    }
  });

  it("holds nothing: asking again and again leaves the ledger as it was", async () => {
    for (let i = 0; i < 3; i++) expectSuccess(check("--tool", "search.web", "--usd", "0.5"));
    const run = allowance(["ledger", "remaining", ...agentArgs(), "--json"]);
    expectSuccess(run);
    const held: unknown[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value !== null && typeof value === "object")
        for (const [key, v] of Object.entries(value)) key === "held" ? held.push(v) : walk(v);
    };
    walk(json(run));
    expect(held.length).toBeGreaterThan(0);
    expect(held.every((v) => v === 0)).toBe(true);
  });

  it("refuses a question about nothing, a missing ledger and hostile amounts (exit 2), naming the flag", () => {
    expectFailure(check("--usd", "1"), 2, /at least one of --tool, --provider or --model/);
    expectFailure(
      allowance(
        base()
          .filter((_, i, all) => all[i - 1] !== "--ledger" && all[i] !== "--ledger")
          .concat(["--tool", "x"]),
      ),
      2,
      /check needs --ledger/,
    );
    for (const [flag, value] of [
      ["--usd", "NaN"],
      ["--usd", "-1"],
      ["--usd", "Infinity"],
      ["--usd", "1e400"],
      ["--usd", "0.0000001"],
      ["--usd", "99999999999999"],
      ["--tokens", "-5"],
      ["--tokens", "1.5"],
      ["--tokens", "9007199254740993"],
      ["--risk", "0x10"],
      ["--risk", ""],
    ] as const)
      expectFailure(check("--tool", "search.web", flag, value), 2, new RegExp(flag));
    expectFailure(check("--tool", "search.web", "--bogus"), 2, /unknown option '--bogus'/);
  });

  it("asks only a file that is a ledger: an empty file or another program's database is refused and left as it was", () => {
    writeFileSync(at("empty.db"), "");
    writeFileSync(at("notes.txt"), "shopping list\n".repeat(40));
    for (const file of [at("empty.db"), at("notes.txt")]) {
      const before = readFileSync(file);
      const reader = ["--token", `@${at("agent.token")}`, "--roots", at("root.pub.jwk")];
      const ledger = ["--ledger", `sqlite:${file}`];
      for (const args of [
        ["check", ...reader, ...ledger, "--tool", "search.web"],
        ["ledger", "remaining", ...reader, ...ledger],
      ])
        expectFailure(allowance(args), 2, /is not an Allowance ledger/);
      expect(readFileSync(file)).toEqual(before);
      expect(existsSync(`${file}-wal`)).toBe(false);
    }
  });

  it("reads --policy strictly: a tool priced twice is refused, not priced at the last value", () => {
    writeFileSync(at("twice.json"), '{"tools": {"send_email": 30, "send_email": 0}}');
    expectFailure(
      allowance([
        "check",
        ...agentArgs(),
        "--policy",
        at("twice.json"),
        "--tool",
        "send_email",
        "--args",
        '{"to":"ana@example.com"}',
      ]),
      2,
      /--policy file .* is not valid JSON: .*duplicate/,
    );
    // A byte that is not UTF-8 in a tool's name would have priced another tool, or none.
    writeFileSync(
      at("latin1.json"),
      Buffer.concat([
        Buffer.from('{"tools": {"send_email": 30, "caf'),
        Buffer.from([0xe9]),
        Buffer.from('": 1}}'),
      ]),
    );
    expectFailure(
      allowance(["check", ...agentArgs(), "--policy", at("latin1.json"), "--tool", "search.web"]),
      2,
      /--policy file .* is not UTF-8/,
    );
  });
});
