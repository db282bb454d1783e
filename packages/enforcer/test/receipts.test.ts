/**
 * Signed receipts (spec/receipts.md): the format and its verifier, the vectors, and the receipts of
 * an enforcer on every ledger family (memory, SQLite, Redis), with 8 processes numbering one root.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  exportJwks,
  formatToken,
  generateKeyPair,
  importJwks,
  keyPairFromSeed,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import { fromBase64url, toBase64url } from "@allowance/core/format";
import {
  Enforcer,
  MemoryLedger,
  decodeReceipt,
  receiptToJSON,
  verifyReceipts,
  type Ledger,
  type Receipt,
  type ReceiptJSON,
  RECEIPT_PROBLEMS,
} from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import {
  RECEIPT_VECTORS_DIR,
  buildReceiptVectors,
  renderReceiptVector,
  type ReceiptVector,
} from "../../../scripts/receipt-vectors.js";
import { entryDigest, signReceipt, type ReceiptEntry } from "../src/receipts.js";
import { Clock, clockOption, family, T0 } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";
import type { LedgerTarget } from "./workers/spender.js";
import type { ReceiptReply, ReceiptTask } from "./workers/receipter.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-receipts-"));
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

const ENTRY: ReceiptEntry = {
  root: "root",
  seq: 1,
  reservationId: "root.a",
  linkIds: ["root", "child"],
  charged: { tokens: 10, usdMicros: 20, risk: 0, requests: 1 },
  late: false,
  atMs: T0,
};
const next = (entry: ReceiptEntry, more: Partial<ReceiptEntry> = {}): ReceiptEntry => ({
  ...entry,
  seq: entry.seq + 1,
  reservationId: `root.r${entry.seq + 1}`,
  atMs: entry.atMs + 1,
  ...more,
});

describe("receipts: the format and its verifier", () => {
  let key: KeyPair;
  let other: KeyPair;
  beforeAll(async () => {
    key = await keyPairFromSeed(new Uint8Array(32).fill(7));
    other = await keyPairFromSeed(new Uint8Array(32).fill(8));
  });

  it("a signed receipt decodes to what was signed, and names the previous entry's digest", () => {
    const second = next(ENTRY);
    const receipt = signReceipt(second, ENTRY, key);
    const decoded = decodeReceipt(receiptToJSON(receipt));
    expect(decoded).toEqual(receipt);
    expect(decoded.prev).toBe(toBase64url(entryDigest(ENTRY)));
    expect(signReceipt(ENTRY, null, key)).not.toHaveProperty("prev");
    // Ed25519 is deterministic: the same entry signs to the same bytes (a retried commit's receipt).
    expect(signReceipt(second, ENTRY, key)).toEqual(receipt);
  });

  it("refuses to sign an entry a ledger could not have given, or a prev that is not the one before", () => {
    for (const bad of [
      { ...ENTRY, seq: 0 },
      { ...ENTRY, seq: 1.5 },
      { ...ENTRY, linkIds: [] },
      { ...ENTRY, linkIds: ["a", "a"] },
      { ...ENTRY, charged: { ...ENTRY.charged, usdMicros: -1 } },
      { ...ENTRY, atMs: Number.NaN },
      { ...ENTRY, late: 1 as unknown as boolean },
      { ...ENTRY, root: "" },
    ])
      expect(() => signReceipt(bad, null, key), JSON.stringify(bad)).toThrow(
        /expected|names a link twice/,
      );
    expect(() => signReceipt(next(next(ENTRY)), ENTRY, key)).toThrow(RangeError);
    expect(() => signReceipt(next(ENTRY), { ...ENTRY, root: "other" }, key)).toThrow(RangeError);
  });

  it("verifies a root's chain, adding up what each link was charged", () => {
    const entries = [ENTRY, next(ENTRY), next(next(ENTRY))];
    const receipts = entries.map((e, i) =>
      receiptToJSON(signReceipt(e, entries[i - 1] ?? null, i === 1 ? other : key)),
    );
    expect(verifyReceipts(receipts, { keys: trustedRoots([key, other]) })).toEqual({
      ok: true,
      verified: 3,
      problems: [],
      roots: [
        {
          root: "root",
          first: 1,
          last: 3,
          count: 3,
          links: {
            root: { tokens: 30, usdMicros: 60, risk: 0, requests: 3 },
            child: { tokens: 30, usdMicros: 60, risk: 0, requests: 3 },
          },
        },
      ],
    });
  });

  it("law: a receipt with any bit of its body or signature flipped does not verify", () => {
    const receipt = receiptToJSON(signReceipt(ENTRY, null, key));
    const keys = trustedRoots([key]);
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.nat({ max: 7 }), (inBody, at, bit) => {
        const bytes = fromBase64url(inBody ? receipt.body : receipt.sig) as Uint8Array;
        const flipped = Uint8Array.from(bytes);
        const i = at % flipped.length;
        flipped[i] = (flipped[i] as number) ^ (1 << bit);
        const spoiled = inBody
          ? { body: toBase64url(flipped), sig: receipt.sig }
          : { body: receipt.body, sig: toBase64url(flipped) };
        const report = verifyReceipts([spoiled], { keys });
        expect(report.ok).toBe(false);
        expect(report.verified).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses arguments that are not receipts and keys with a TypeError, never a partial report", () => {
    const keys = trustedRoots([key]);
    for (const bad of [null, "receipts", {}, 1])
      expect(() => verifyReceipts(bad as never, { keys })).toThrow(TypeError);
    for (const bad of [null, {}, { keys: [] }, { keys: {} }])
      expect(() => verifyReceipts([], bad as never)).toThrow(TypeError);
    // A map of key pairs (not public keys), of strings, or keyed by something other than a kid:
    // refused at once, not an untyped failure inside the first check.
    const kid = [...keys.keys()][0] as string;
    for (const map of [
      new Map([[kid, key]]),
      new Map([[kid, "key"]]),
      new Map([[kid, { bytes: new Uint8Array(31) }]]),
      new Map([[7, [...keys.values()][0]]]),
    ])
      expect(() => verifyReceipts([], { keys: map as never })).toThrow(/"options.keys"/);
    expect(() => verifyReceipts([], { keys, partial: "yes" as never })).toThrow(TypeError);
    for (const bad of [null, [], "x", { body: 1, sig: 2 }])
      expect(() => decodeReceipt(bad)).toThrow(expect.objectContaining({ code: "ERR_MALFORMED" }));
    expect(verifyReceipts([], { keys })).toEqual({
      ok: true,
      verified: 0,
      problems: [],
      roots: [],
    });
  });

  it("regression: a misspelt option is a TypeError naming it, not a `partial` left unset", () => {
    const keys = trustedRoots([key]);
    for (const name of ["partal", "Partial", "strict", "__proto__x"])
      expect(() => verifyReceipts([], { keys, [name]: true } as never)).toThrow(
        new RegExp(`no option named "${name}"`),
      );
    for (const bad of [null, undefined, {}, { body: "a" }, { body: 1, sig: 2 }])
      expect(() => receiptToJSON(bad as never)).toThrow(/"receipt"/);
  });

  it("regression: a link named __proto__ is added up as any other, and Object.prototype is left alone", () => {
    const first = { ...ENTRY, linkIds: ["__proto__", "constructor"] };
    const second = next(first);
    const receipts = [signReceipt(first, null, key), signReceipt(second, first, key)];
    const report = verifyReceipts(receipts.map(receiptToJSON), { keys: trustedRoots([key]) });
    expect(report.ok).toBe(true);
    const totals = { tokens: 20, usdMicros: 40, risk: 0, requests: 2 };
    expect(Object.getOwnPropertyDescriptor(report.roots[0]?.links, "__proto__")?.value).toEqual(
      totals,
    );
    expect(Object.getOwnPropertyDescriptor(report.roots[0]?.links, "constructor")?.value).toEqual(
      totals,
    );
    // `{}.__proto__.tokens += 10` made every object in the process have a NaN `tokens`.
    expect(({} as Record<string, unknown>)["tokens"]).toBeUndefined();
  });
});

describe("the receipt vectors", () => {
  const committed: ReceiptVector[] = readdirSync(RECEIPT_VECTORS_DIR)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .map((file) => JSON.parse(readFileSync(join(RECEIPT_VECTORS_DIR, file), "utf8")));

  it("are exactly what scripts/receipt-vectors.ts generates (run scripts/generate-receipt-vectors.ts after a deliberate change)", async () => {
    const built = await buildReceiptVectors();
    expect(committed.map((v) => v.name).sort()).toEqual(built.map((v) => v.name).sort());
    for (const vector of built)
      expect(readFileSync(join(RECEIPT_VECTORS_DIR, `${vector.name}.json`), "utf8")).toBe(
        renderReceiptVector(vector),
      );
  });

  it("cover a whole chain, duplicates, a gap, a late start, a window, a fork, a broken link, an overflow, a bad signature, an unknown key and malformed input", () => {
    const kinds = new Set(committed.flatMap((v) => v.expect.problems.map((p) => p.kind)));
    expect(kinds).toEqual(new Set(RECEIPT_PROBLEMS));
    expect(
      committed
        .filter((v) => v.expect.ok)
        .map((v) => v.name)
        .sort(),
    ).toEqual(["duplicates", "partial-window", "whole-chains"]);
  });

  for (const vector of committed)
    it(`${vector.name}: signing reproduces every receipt, and the verifier reports what the vector states`, async () => {
      const signers = await Promise.all(
        vector.signers.map((s) => keyPairFromSeed(fromBase64url(s.seed) as Uint8Array)),
      );
      expect(signers.map((k) => k.kid)).toEqual(vector.signers.map((s) => s.kid));
      for (const s of vector.signed)
        expect(receiptToJSON(signReceipt(s.entry, s.prev, signers[s.signer] as KeyPair))).toEqual(
          s.receipt,
        );
      const keys = await importJwks(vector.keys);
      expect(verifyReceipts(vector.receipts, { keys, partial: vector.partial })).toEqual(
        vector.expect,
      );
    });
});

type Factory = (now?: () => number) => Promise<Ledger>;
const families: readonly (readonly [string, Factory, boolean])[] = [
  ["memory", async (now) => new MemoryLedger(clockOption(now)), true],
  [
    "sqlite",
    async (now) => SqliteLedger.open(join(dir, `receipts-${files++}.db`), clockOption(now)),
    true,
  ],
  [
    "redis",
    async (now) => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis as Redis, { keyPrefix: prefix, ...clockOption(now) });
      return Object.assign(ledger, { close: () => deleteKeys(redis as Redis, prefix) });
    },
    redisUrl !== "",
  ],
];

for (const [name, make, available] of families) {
  describe.skipIf(!available)(`receipts on the ${name} ledger`, () => {
    let key: KeyPair;
    let chains: { parent: VerifiedChain; children: VerifiedChain[] };
    beforeAll(async () => {
      key = await generateKeyPair();
      chains = await family({ usdMicros: 1_000 }, [{ usdMicros: 500 }, { usdMicros: 500 }]);
    });

    async function withReceipts<T>(
      run: (enforcer: Enforcer, receipts: Receipt[], ledger: Ledger) => Promise<T>,
    ): Promise<T> {
      const clock = new Clock();
      const ledger = await make(clock.now);
      const enforcer = new Enforcer({ ledger, now: clock.now, receipts: { key } });
      const receipts: Receipt[] = [];
      enforcer.on("receipt", (receipt) => receipts.push(receipt));
      try {
        return await run(enforcer, receipts, ledger);
      } finally {
        await ledger.close();
      }
    }

    const spend = async (enforcer: Enforcer, chain: VerifiedChain, usdMicros: number) => {
      const decision = await enforcer.reserve({ chain, usdMicros });
      if (decision.decision === "DENY") throw new Error(decision.detail);
      return enforcer.commit(decision.reservationId, { usdMicros });
    };

    it("signs with the key as it was given: its bytes changed in place later sign nothing else", async () => {
      const held = {
        kid: key.kid,
        publicKey: Uint8Array.from(key.publicKey),
        privateKey: Uint8Array.from(key.privateKey),
      };
      const clock = new Clock();
      const ledger = await make(clock.now);
      try {
        const enforcer = new Enforcer({ ledger, now: clock.now, receipts: { key: held } });
        const receipts: Receipt[] = [];
        enforcer.on("receipt", (receipt) => receipts.push(receipt));
        held.privateKey.set((await generateKeyPair()).privateKey);
        held.publicKey.fill(7);
        await spend(enforcer, chains.children[0] as VerifiedChain, 10);
        expect(receipts).toHaveLength(1);
        expect(
          verifyReceipts(receipts.map(receiptToJSON), { keys: trustedRoots([key]) }),
        ).toMatchObject({ ok: true, verified: 1, problems: [] });
      } finally {
        await ledger.close();
      }
    });

    it("signs a receipt of every commit, numbered from 1 per root, each naming the entry before; the chain verifies and adds up to what remaining() shows", async () => {
      await withReceipts(async (enforcer, receipts) => {
        const [a, b] = chains.children as [VerifiedChain, VerifiedChain];
        for (const [chain, usd] of [
          [a, 30],
          [b, 40],
          [a, 50],
        ] as const) {
          const result = await spend(enforcer, chain, usd);
          expect(result).toMatchObject({ status: "committed", receipt: { seq: receipts.length } });
        }
        expect(receipts.map((r) => [r.seq, r.charged.usdMicros, r.linkIds.length])).toEqual([
          [1, 30, 2],
          [2, 40, 2],
          [3, 50, 2],
        ]);
        expect(receipts.every((r) => r.kid === key.kid && r.root === a.linkIds[0])).toBe(true);
        const report = verifyReceipts(receipts.map(receiptToJSON), { keys: trustedRoots([key]) });
        expect(report).toMatchObject({ ok: true, verified: 3, problems: [] });
        const remaining = await enforcer.remaining(a);
        const spent = (link: number) =>
          remaining.links[link]?.limits.find((l) => l.field === "usdMicros")?.spent;
        expect(report.roots[0]?.links[a.linkIds[0] as string]?.usdMicros).toBe(spent(0));
        expect(report.roots[0]?.links[a.linkIds[1] as string]?.usdMicros).toBe(spent(1));
      });
    });

    it("regression of a lost reply: a commit retried after the ledger applied it answers the same receipt, byte for byte, and leaves no gap", async () => {
      await withReceipts(async (enforcer, receipts, ledger) => {
        const chain = chains.children[0] as VerifiedChain;
        await spend(enforcer, chain, 10);
        const decision = await enforcer.reserve({ chain, usdMicros: 20 });
        if (decision.decision === "DENY") throw new Error(decision.detail);
        // The commit reaches the ledger, and its answer never comes back.
        await ledger.commit(
          decision.reservationId,
          { tokens: 0, usdMicros: 25, risk: -1, requests: -1 },
          undefined,
          { receipt: true },
        );
        const retried = await enforcer.commit(decision.reservationId, { usdMicros: 25 });
        expect(retried).toMatchObject({ status: "committed", already: true, receipt: { seq: 2 } });
        const again = await enforcer.commit(decision.reservationId, { usdMicros: 25 });
        expect(again.status === "committed" && again.receipt).toEqual(
          retried.status === "committed" && retried.receipt,
        );
        await spend(enforcer, chain, 30);
        const unique = [...new Map(receipts.map((r) => [r.seq, receiptToJSON(r)])).values()];
        expect(verifyReceipts(unique, { keys: trustedRoots([key]) })).toMatchObject({
          ok: true,
          verified: 3,
        });
      });
    });

    it("a receipt dropped, altered or replaced shows; a ledger that lost its state shows as a fork", async () => {
      const first = await withReceipts(async (enforcer, receipts) => {
        for (const usd of [1, 2, 3, 4]) await spend(enforcer, chains.parent, usd);
        return receipts.map(receiptToJSON);
      });
      const keys = trustedRoots([key]);
      const kinds = (receipts: readonly unknown[]) =>
        verifyReceipts(receipts, { keys }).problems.map((p) => [p.kind, p.seq]);
      expect(kinds([first[0], first[1], first[3]])).toEqual([["gap", 3]]);
      // A byte of the second one's body changed: refused (whichever check catches it), and a gap.
      const second = fromBase64url((first[1] as ReceiptJSON).body) as Uint8Array;
      second[10] = (second[10] as number) ^ 0x20;
      const altered = { body: toBase64url(second), sig: (first[1] as ReceiptJSON).sig };
      const report = verifyReceipts([first[0], altered, first[2], first[3]], { keys });
      expect(report.problems.map((p) => p.index ?? p.kind)).toEqual([1, "gap"]);
      expect(report.problems[1]).toMatchObject({ kind: "gap", seq: 2, to: 2 });
      // A fresh ledger knows no receipts of the root: it numbers from 1 again.
      const lost = await withReceipts(async (enforcer, receipts) => {
        await spend(enforcer, chains.parent, 9);
        return receipts.map(receiptToJSON);
      });
      expect(kinds([...first, ...lost])).toEqual([["fork", 1]]);
    });

    it("refuses receipts on a ledger that does not number them, and a key whose halves do not match", async () => {
      const ledger = await make();
      try {
        const plain: Ledger = {
          name: "plain",
          reserve: (op) => ledger.reserve(op),
          commit: (id, actual, now) => ledger.commit(id, actual, now),
          release: (id, now) => ledger.release(id, now),
          balances: (root, accounts, now) => ledger.balances(root, accounts, now),
          close: async () => {},
        } as Ledger;
        expect(() => new Enforcer({ ledger: plain, receipts: { key } })).toThrow(TypeError);
        const stranger = await generateKeyPair();
        // Spelt out: a spread would leave out the seed, which a key pair does not enumerate.
        const own = { kid: key.kid, publicKey: key.publicKey, privateKey: key.privateKey };
        expect(() => new Enforcer({ ledger, receipts: { key: own as KeyPair } })).not.toThrow();
        for (const bad of [
          { ...own, publicKey: stranger.publicKey },
          { ...own, kid: stranger.kid },
          { ...own, privateKey: new Uint8Array(31) },
          { ...own, privateKey: stranger.privateKey },
          { kid: key.kid },
          null,
        ])
          expect(() => new Enforcer({ ledger, receipts: { key: bad as KeyPair } })).toThrow(/key/);
        expect(() => new Enforcer({ ledger, receipts: { key, extra: 1 } as never })).toThrow(
          TypeError,
        );
        await expect(
          ledger.commit("root.x", { tokens: 0, usdMicros: 0, risk: 0, requests: 0 }, T0, {
            receipt: "yes",
          } as never),
        ).rejects.toThrow(TypeError);
      } finally {
        await ledger.close();
      }
    });
  });
}

describe("receipts from 8 processes sharing one root", () => {
  const started = new Set<ChildProcess>();
  afterAll(() => {
    for (const child of started)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
  const worker = fileURLToPath(new URL("./workers/receipter.ts", import.meta.url));

  function start(task: ReceiptTask): { child: ChildProcess; next: () => Promise<ReceiptReply> } {
    const child = fork(worker, [], {
      cwd: repoRoot,
      execArgv: ["--conditions=@allowance/source", "--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    started.add(child);
    const replies: ReceiptReply[] = [];
    const waiting: ((reply: ReceiptReply) => void)[] = [];
    child.on("message", (reply: ReceiptReply) => {
      const w = waiting.shift();
      if (w === undefined) replies.push(reply);
      else w(reply);
    });
    child.send(task);
    const next = () =>
      new Promise<ReceiptReply>((resolve, reject) => {
        const reply = replies.shift();
        if (reply !== undefined) return resolve(reply);
        waiting.push(resolve);
        child.once("exit", (code) => reject(new Error(`worker exited (${code}) before replying`)));
      });
    return { child, next };
  }

  const targets: readonly (readonly [string, () => LedgerTarget, boolean])[] = [
    ["sqlite", () => ({ kind: "sqlite", path: join(dir, `race-${files++}.db`) }), true],
    ["redis", () => ({ kind: "redis", url: redisUrl, prefix: freshPrefix() }), redisUrl !== ""],
  ];
  for (const [name, target, available] of targets)
    it.skipIf(!available)(
      `on ${name}: every commit is numbered once, without a gap or a fork, and every process's receipts chain into one`,
      async () => {
        const rootKey = await generateKeyPair();
        const holder = await generateKeyPair();
        const token = formatToken(
          mint({
            rootKey,
            holder: publicKeyOf(holder),
            grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 1_000_000 },
          }),
        );
        const seeds = Array.from({ length: 8 }, (_, i) => new Uint8Array(32).fill(40 + i));
        const ledger = target();
        if (ledger.kind === "sqlite") await SqliteLedger.open(ledger.path).close();
        try {
          const workers = seeds.map((seed) =>
            start({
              ledger,
              token,
              jwks: exportJwks([rootKey]),
              seed: toBase64url(seed),
              loops: 3,
              commits: 10,
            }),
          );
          for (const w of workers) expect(await w.next()).toEqual({ mode: "ready" });
          for (const w of workers) w.child.send("go");
          const replies = await Promise.all(workers.map((w) => w.next()));
          const receipts = replies.flatMap((reply) => {
            if (reply.mode !== "done") throw new Error(JSON.stringify(reply));
            return reply.receipts;
          });
          expect(receipts).toHaveLength(8 * 3 * 10);
          const keys = trustedRoots(await Promise.all(seeds.map((s) => keyPairFromSeed(s))));
          const report = verifyReceipts(receipts, { keys });
          expect(report.problems).toEqual([]);
          expect(report.roots).toMatchObject([{ first: 1, last: 240, count: 240 }]);
          // Each process numbered some: a real race between signers.
          const bySigner = new Set(receipts.map((r) => decodeReceipt(r).kid));
          expect(bySigner.size).toBe(8);
        } finally {
          if (ledger.kind === "redis") await deleteKeys(redis as Redis, ledger.prefix);
        }
      },
      120_000,
    );
});
