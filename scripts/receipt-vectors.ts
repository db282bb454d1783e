/**
 * The receipt vectors' cases (spec/receipts.md §7): receipts signed from stated entries with fixed
 * keys, some of them spoiled on purpose, and what verifyReceipts must report of them. Written to
 * spec/vectors/receipts/*.json by scripts/generate-receipt-vectors.ts; a test fails when the
 * committed files differ from what these cases give.
 */
import { join } from "node:path";
import { exportJwks, keyPairFromSeed, trustedRoots, type KeyPair } from "@allowance/core";
import { encodeCanonical, fromBase64url, toBase64url } from "@allowance/core/format";
import {
  signReceipt,
  verifyReceipts,
  type ReceiptEntry,
  type ReceiptJSON,
  type ReceiptsReport,
} from "../packages/enforcer/src/receipts.js";

export const RECEIPT_VECTORS_DIR = join(import.meta.dirname, "..", "spec", "vectors", "receipts");

const T0 = 1_800_000_000_000;

/** One receipt the case signs: its entry, the entry before it (null: none), and which signer. */
interface Signed {
  readonly entry: ReceiptEntry;
  readonly prev: ReceiptEntry | null;
  readonly signer: number;
}

export interface ReceiptVector {
  readonly name: string;
  readonly description: string;
  /** The signers' 32-byte seeds (base64url), so that a second implementation signs the same bytes. */
  readonly signers: readonly { readonly seed: string; readonly kid: string }[];
  /** The receipts signed, each with what it was signed from, in the order given to the verifier. */
  readonly signed: readonly (Signed & { readonly receipt: ReceiptJSON })[];
  /** What the verifier is given: the signed receipts, spoiled or not, and other inputs. */
  readonly receipts: readonly unknown[];
  /** The verifier's keys, a JWKS of public keys. */
  readonly keys: unknown;
  readonly partial: boolean;
  readonly expect: ReceiptsReport;
}

interface Case {
  readonly name: string;
  readonly description: string;
  readonly signed: readonly Signed[];
  /** The verifier's input, from the signed receipts (default: all of them, in order). */
  readonly input?: (receipts: readonly ReceiptJSON[], keys: readonly KeyPair[]) => unknown[];
  /** The signers whose keys the verifier has (default: all). */
  readonly trusted?: readonly number[];
  readonly partial?: boolean;
}

const seedOf = (first: number) => Uint8Array.from({ length: 32 }, (_, i) => (first + i) & 0xff);
const SEEDS = [seedOf(1), seedOf(101), seedOf(201)];

const LINKS_A = ["rootA", "childA1"];
const entry = (
  root: string,
  seq: number,
  usdMicros: number,
  more: Partial<ReceiptEntry> = {},
): ReceiptEntry => ({
  root,
  seq,
  reservationId: `${root}.r${seq}`,
  linkIds: root === "rootA" ? LINKS_A : [root],
  charged: { tokens: 100 * seq, usdMicros, risk: 0, requests: 1 },
  late: false,
  atMs: T0 + 1_000 * seq,
  ...more,
});

/** A chain of `n` entries of one root, each signed naming the one before. */
function chainOf(root: string, n: number, signer = 0): Signed[] {
  const entries = Array.from({ length: n }, (_, i) => entry(root, i + 1, 10 * (i + 1)));
  return entries.map((e, i) => ({ entry: e, prev: entries[i - 1] ?? null, signer }));
}

/** A receipt's body as canonical CBOR, rebuilt after `change` edits its decoded map. */
function rebuilt(receipt: ReceiptJSON, change: (bytes: Uint8Array) => Uint8Array): ReceiptJSON {
  return { body: toBase64url(change(fromBase64url(receipt.body) as Uint8Array)), sig: receipt.sig };
}

export const CASES: readonly Case[] = [
  {
    name: "whole-chains",
    description:
      "Two roots' receipts, interleaved, signed by two enforcers sharing the ledger: every signature verifies, each root's sequence runs from 1 without a gap, and each receipt names the entry before it. The report adds up what each link was charged.",
    signed: [
      ...chainOf("rootA", 3).map((s, i) => ({ ...s, signer: i % 2 })),
      ...chainOf("rootB", 2, 1),
    ].sort((a, b) => a.entry.atMs - b.entry.atMs),
  },
  {
    name: "duplicates",
    description:
      "The same receipt given twice (a commit retried after a lost reply raises it again) counts once.",
    signed: chainOf("rootA", 2),
    input: (r) => [r[0], r[1], r[1], r[0]],
  },
  {
    name: "a-gap",
    description:
      "A receipt left out of a root's sequence is a gap: the report names the missing numbers.",
    signed: chainOf("rootA", 5),
    input: (r) => [r[0], r[3], r[4]],
  },
  {
    name: "starts-late",
    description:
      "A root's receipts start at 3: numbers 1 and 2 are missing, unless the verifier is told the receipts are a window (next vector).",
    signed: chainOf("rootA", 4),
    input: (r) => [r[2], r[3]],
  },
  {
    name: "partial-window",
    description: "The same receipts, verified as a window of the root's (`partial`): whole.",
    signed: chainOf("rootA", 4),
    input: (r) => [r[2], r[3]],
    partial: true,
  },
  {
    name: "a-fork",
    description:
      "Two different receipts with the same sequence number of a root (its ledger lost its state and numbered again, or two ledgers share a root): a fork. The first one given is kept for the chain.",
    signed: [
      ...chainOf("rootA", 3),
      {
        entry: entry("rootA", 2, 999, { reservationId: "rootA.other" }),
        prev: entry("rootA", 1, 10),
        signer: 0,
      },
    ],
  },
  {
    name: "a-broken-link",
    description:
      "A receipt whose prev is not the digest of the entry numbered before it: it was not issued after that one (substituted, or from another history).",
    signed: [
      ...chainOf("rootA", 1),
      { entry: entry("rootA", 2, 20), prev: entry("rootA", 1, 11), signer: 0 },
      { entry: entry("rootA", 3, 30), prev: entry("rootA", 2, 20), signer: 0 },
    ],
  },
  {
    name: "an-overflow",
    description:
      "Receipts whose amounts charged to one link add up past 2^53 - 1, which no ledger records (each receipt is well formed and signed): an overflow, and the total shown as 2^53 - 1, never rounded.",
    signed: (() => {
      const half = 2 ** 52;
      const entries = [entry("rootA", 1, half), entry("rootA", 2, half), entry("rootA", 3, 5)];
      return entries.map((e, i) => ({ entry: e, prev: entries[i - 1] ?? null, signer: 0 }));
    })(),
  },
  {
    name: "bad-signature",
    description:
      "A receipt whose signature does not verify (one bit flipped, or its body changed after signing) is refused, so its number is a gap too.",
    signed: chainOf("rootA", 3),
    input: (r) => {
      const sig = fromBase64url((r[1] as ReceiptJSON).sig) as Uint8Array;
      sig[5] = (sig[5] as number) ^ 0x01;
      return [r[0], { body: (r[1] as ReceiptJSON).body, sig: toBase64url(sig) }, r[2]];
    },
  },
  {
    name: "unknown-key",
    description:
      "A receipt signed by a key the verifier was not given is refused, as is its number.",
    signed: [...chainOf("rootA", 1), { ...(chainOf("rootA", 2)[1] as Signed), signer: 2 }],
    trusted: [0, 1],
  },
  {
    name: "malformed",
    description:
      "Inputs that are not receipts: each is reported with its position, and the well-formed ones are verified as usual. Not an object; a third key; a body that is not canonical base64url; a signature of 63 bytes; a body whose map keys are out of order (not canonical CBOR); a body with a float; version 2; sequence number 0; a first receipt naming a prev; a reservation not of its root; a link named twice.",
    signed: chainOf("rootA", 1),
    input: (r) => {
      const good = r[0] as ReceiptJSON;
      const body = fromBase64url(good.body) as Uint8Array;
      const swapped = (() => {
        // The map's first two entries (1: version, 2: root) in the other order.
        const map = decodedEntries(body);
        return encodeRaw(map, [1, 0, ...map.slice(2).map((_, i) => i + 2)]);
      })();
      const withKey = (key: number, value: Uint8Array) => {
        const map = decodedEntries(body);
        const at = map.findIndex(([k]) => k === key);
        map[at] = [key, value];
        return encodeRaw(
          map,
          map.map((_, i) => i),
        );
      };
      return [
        "a receipt",
        { ...good, note: "hello" },
        { body: `${good.body}=`, sig: good.sig },
        { body: good.body, sig: good.sig.slice(0, 84) },
        rebuilt(good, () => swapped),
        rebuilt(good, () => withKey(3, Uint8Array.of(0xf9, 0x3c, 0x00))),
        rebuilt(good, () => withKey(1, encodeCanonical(2))),
        rebuilt(good, () => withKey(3, encodeCanonical(0))),
        rebuilt(good, () => {
          const map = decodedEntries(body);
          map.splice(8, 0, [9, encodeCanonical(new Uint8Array(32))]);
          return encodeRaw(
            map,
            map.map((_, i) => i),
          );
        }),
        rebuilt(good, () => withKey(4, encodeCanonical("rootB.r1"))),
        rebuilt(good, () => withKey(5, encodeCanonical(["rootA", "rootA"]))),
        good,
      ];
    },
  },
];

/** A canonical map's entries as [key, raw encoded value], in order (keys here are 1 to 10). */
function decodedEntries(body: Uint8Array): [number, Uint8Array][] {
  // Each key is one byte (0x01–0x0a); each value is the raw bytes of its item.
  const entries: [number, Uint8Array][] = [];
  let at = 1;
  const head = body[0] as number;
  const count = head & 0x1f;
  for (let i = 0; i < count; i++) {
    const key = body[at] as number;
    at += 1;
    const start = at;
    at = skipItem(body, at);
    entries.push([key, body.subarray(start, at)]);
  }
  return entries;
}

/** The map of `entries` in the order `order`, with a head for their count. */
function encodeRaw(entries: readonly [number, Uint8Array][], order: readonly number[]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(0xa0 | entries.length)];
  for (const i of order) {
    const [key, value] = entries[i] as [number, Uint8Array];
    parts.push(Uint8Array.of(key), value);
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The offset just past the CBOR item at `at` (the data model of spec/format.md §3, and floats). */
function skipItem(bytes: Uint8Array, at: number): number {
  const initial = bytes[at] as number;
  const major = initial >> 5;
  const info = initial & 0x1f;
  let argument = info;
  let next = at + 1;
  if (info === 24) argument = bytes[next++] as number;
  else if (info === 25) {
    argument = ((bytes[next] as number) << 8) | (bytes[next + 1] as number);
    next += 2;
  } else if (info === 26) {
    argument = new DataView(bytes.buffer, bytes.byteOffset + next, 4).getUint32(0);
    next += 4;
  } else if (info === 27) {
    argument = Number(new DataView(bytes.buffer, bytes.byteOffset + next, 8).getBigUint64(0));
    next += 8;
  }
  if (major === 0 || major === 7) return next;
  if (major === 2 || major === 3) return next + argument;
  if (major === 4) {
    for (let i = 0; i < argument; i++) next = skipItem(bytes, next);
    return next;
  }
  throw new RangeError(`skipItem: major type ${major} not expected in a receipt body`);
}

/** Every case signed and verified: its receipts, inputs and the report the verifier gives. */
export async function buildReceiptVectors(): Promise<ReceiptVector[]> {
  const keys = await Promise.all(SEEDS.map((seed) => keyPairFromSeed(seed)));
  return CASES.map((c) => {
    const signed = c.signed.map((s) => ({
      ...s,
      receipt: receiptJSON(signReceipt(s.entry, s.prev, keys[s.signer] as KeyPair)),
    }));
    const receipts = (c.input ?? ((r) => [...r]))(
      signed.map((s) => s.receipt),
      keys,
    );
    const trusted = (c.trusted ?? keys.map((_, i) => i)).map((i) => keys[i] as KeyPair);
    const partial = c.partial ?? false;
    const expect = verifyReceipts(receipts, { keys: trustedRoots(trusted), partial });
    return {
      name: c.name,
      description: c.description,
      signers: keys.map((key, i) => ({ seed: toBase64url(SEEDS[i] as Uint8Array), kid: key.kid })),
      signed,
      receipts,
      keys: exportJwks(trusted),
      partial,
      expect,
    };
  });
}

function receiptJSON(receipt: ReceiptJSON): ReceiptJSON {
  return { body: receipt.body, sig: receipt.sig };
}

/** A vector's file, as committed. */
export function renderReceiptVector(vector: ReceiptVector): string {
  return `${JSON.stringify(vector, null, 2)}\n`;
}
