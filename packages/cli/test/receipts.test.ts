/**
 * `allowance ledger receipts verify` (spec/receipts.md §6), run from the TypeScript source through
 * the CLI's own `main`: a file of receipts an enforcer signed, whole, spoiled and malformed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  exportJwks,
  exportPublicJwk,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import { Enforcer, MemoryLedger, receiptToJSON, type ReceiptJSON } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { parseReceiptsText } from "../src/commands/ledger.js";
import { UsageError } from "../src/errors.js";
import { main } from "../src/program.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-cli-receipts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

/** Runs the CLI's main with stdout and stderr captured. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

let key: KeyPair;
let receipts: ReceiptJSON[];
beforeAll(async () => {
  key = await generateKeyPair();
  const rootKey = await generateKeyPair();
  const holder = await generateKeyPair();
  const token = mint({
    rootKey,
    holder: publicKeyOf(holder),
    grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 1_000_000 },
  });
  const chain = verify(token, { roots: trustedRoots([rootKey]) });
  const enforcer = new Enforcer({ ledger: new MemoryLedger(), receipts: { key } });
  receipts = [];
  for (const usdMicros of [250_000, 100_000, 50_000]) {
    const decision = await enforcer.reserve({ chain, usdMicros });
    if (decision.decision === "DENY") throw new Error(decision.detail);
    const result = await enforcer.commit(decision.reservationId, { usdMicros });
    if (result.status !== "committed" || result.receipt === undefined)
      throw new Error("no receipt");
    receipts.push(receiptToJSON(result.receipt));
  }
  writeFileSync(at("enforcer.pub.jwk"), JSON.stringify(exportPublicJwk(publicKeyOf(key))));
  writeFileSync(at("keys.jwks"), JSON.stringify(exportJwks([key])));
});

const jsonl = (values: readonly unknown[]) =>
  values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join("\n") + "\n";

describe("allowance ledger receipts verify", () => {
  it("reads JSON Lines (blank lines skipped, a line that is not JSON passed on as text) or a JSON array", () => {
    expect(parseReceiptsText('{"a":1}\n\nnot json\n  \n[1]\n')).toEqual({
      values: [{ a: 1 }, "not json", [1]],
      lines: [1, 3, 5],
    });
    expect(parseReceiptsText('  [{"a":1}, 2]')).toEqual({ values: [{ a: 1 }, 2], lines: [0, 0] });
    expect(() => parseReceiptsText("[1, ")).toThrow(UsageError);
  });

  it("verifies a whole file: exit 0, the root's numbers and what each link was charged", async () => {
    writeFileSync(at("whole.jsonl"), jsonl(receipts));
    const text = await run([
      "ledger",
      "receipts",
      "verify",
      "--receipts",
      at("whole.jsonl"),
      "--keys",
      at("enforcer.pub.jwk"),
    ]);
    expect(text).toMatchObject({ code: 0, stderr: "" });
    expect(text.stdout).toMatch(
      /^receipts: 3 verified, 0 problems\nroot \S+: receipts 1 to 3 \(3 present\)\n/,
    );
    expect(text.stdout).toMatch(/usd \$0\.40 · tokens 0 · requests 3/);
    const json = await run([
      "ledger",
      "receipts",
      "verify",
      "--receipts",
      at("whole.jsonl"),
      "--keys",
      at("keys.jwks"),
      "--json",
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: true,
      verified: 3,
      problems: [],
      roots: [{ first: 1, last: 3, count: 3 }],
    });
  });

  it("refuses a file with a receipt missing and a line that is not one: exit 1, the report, one line on stderr", async () => {
    writeFileSync(at("spoiled.jsonl"), jsonl([receipts[0], "garbage", receipts[2]]));
    const argv = ["ledger", "receipts", "verify", "--receipts", at("spoiled.jsonl")];
    const text = await run([...argv, "--keys", at("enforcer.pub.jwk")]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("receipts: 2 verified, 2 problems");
    expect(text.stdout).toContain("malformed: line 2: receipt: a receipt is a JSON object");
    expect(text.stdout).toMatch(/gap: receipt 2 of root \S+ is missing/);
    expect(text.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(text.stderr).toMatch(/^allowance: 2 problems in the receipts: /);
    const json = await run([...argv, "--keys", at("enforcer.pub.jwk"), "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      code: "RECEIPTS_INVALID",
      verified: 2,
      problems: [
        { kind: "malformed", index: 1, line: 2 },
        { kind: "gap", seq: 2, to: 2 },
      ],
    });
  });

  it("refuses receipts signed by a key it was not given", async () => {
    const stranger = await generateKeyPair();
    writeFileSync(at("stranger.jwks"), JSON.stringify(exportJwks([stranger])));
    writeFileSync(at("whole2.jsonl"), jsonl(receipts));
    const result = await run([
      "ledger",
      "receipts",
      "verify",
      "--receipts",
      at("whole2.jsonl"),
      "--keys",
      at("stranger.jwks"),
      "--json",
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).problems.map((p: { kind: string }) => p.kind)).toEqual([
      "unknown-key",
      "unknown-key",
      "unknown-key",
    ]);
  });

  it("is a usage error (exit 2) without a readable receipts file or with keys that are not a JWK", async () => {
    writeFileSync(at("not-keys.json"), "{}");
    for (const argv of [
      ["--receipts", at("missing.jsonl"), "--keys", at("enforcer.pub.jwk")],
      ["--receipts", at("whole.jsonl"), "--keys", at("not-keys.json")],
      ["--receipts", at("whole.jsonl")],
    ]) {
      const result = await run(["ledger", "receipts", "verify", ...argv]);
      expect(result.code, argv.join(" ")).toBe(2);
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});
