/**
 * `pnpm fuzz [--count N] [--seed S] [--write-corpus]`: generated and mutated inputs through token
 * parsing, verify (plain and with a warm prefix cache), presentation checks and the middleware's
 * authorizer. Every outcome must be acceptance of a genuine token (a prefix of a chain we minted)
 * or an AllowanceError; anything else is reported. Not part of the test command: the tests replay
 * the small corpus this writes to test/fuzz-corpus/.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatToken, parseToken, type KeyPair, type Token } from "@allowance/core";
import { encodeToken, parentDigest, signingInput, toBase64url } from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import { createAuthorizer, createVerifier, type ReplayCache } from "@allowance/verifier";
import { fuzzFixture, FUZZ_AUD, FUZZ_NOW } from "./fuzz-fixture.js";
import { runFuzzInput, type FuzzInput } from "./fuzz-run.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const COUNT = option("--count", 1_000_000);
let seed = option("--seed", 20261123) >>> 0;
const WRITE_CORPUS = args.includes("--write-corpus");
const AUD = FUZZ_AUD;
const NOW = FUZZ_NOW;

/** xorshift32: reproducible from the seed. */
function random(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 0x1_0000_0000;
}
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;

const fixture = await fuzzFixture();
const { roots, presentations } = fixture;
const originals = fixture.tokens.map(encodeToken);
const alwaysNew: ReplayCache = { claim: () => true };
const cached = createVerifier({ roots });
for (const token of fixture.tokens) cached.verify(token, { now: () => NOW * 1000 });
const authorizer = createAuthorizer({
  roots,
  audience: AUD,
  replay: alwaysNew,
  now: () => NOW * 1000,
});

function mutate(bytes: Uint8Array): Uint8Array {
  const out = [...bytes];
  const edits = 1 + int(4);
  for (let e = 0; e < edits; e++) {
    const at = int(out.length + 1);
    switch (int(8)) {
      case 0:
        out[at] = (out[at] ?? 0) ^ (1 << int(8));
        break;
      case 1:
        out[at] = int(256);
        break;
      case 2:
        out.splice(at, 1);
        break;
      case 3:
        out.splice(at, 0, int(256));
        break;
      case 4:
        out.length = Math.min(out.length, at);
        break;
      case 5: {
        const from = int(out.length);
        const len = 1 + int(40);
        out.splice(at, 0, ...out.slice(from, from + len));
        break;
      }
      case 6: {
        const other = pick(originals);
        const from = int(other.length);
        out.splice(at, 1 + int(60), ...other.subarray(from, from + 1 + int(60)));
        break;
      }
      default:
        out[at] = pick([
          0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3f, 0x40, 0x58, 0x5f, 0x80, 0x9f, 0xa0, 0xbf,
          0xc0, 0xd8, 0xf4, 0xf7, 0xfb, 0xff,
        ]);
        break;
    }
  }
  return Uint8Array.from(out.slice(0, 20_000));
}

/** The leaf's payload mutated and then correctly signed: reaches decoding and narrowing. */
function resignedMutation(): Uint8Array {
  const index = int(fixture.tokens.length);
  const token = fixture.tokens[index] as Token;
  const last = token.links.length - 1;
  const link = token.links[last] as Token["links"][number];
  const payload = mutate(link.payload).subarray(0, 4000);
  const signer = (fixture.signers[index] as readonly KeyPair[])[last] as KeyPair;
  const digest =
    last === 0 ? token.rootKid : parentDigest(token.links[last - 1] as Token["links"][number]);
  const signature = nodeBackend.sign(signer.privateKey, signingInput(digest, payload));
  return encodeToken({
    rootKid: token.rootKid,
    links: [...token.links.slice(0, last), { payload, signature }],
  });
}

function randomText(length: number): string {
  const alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \u00e9\u0000";
  let text = "";
  for (let i = 0; i < length; i++) text += alphabet[int(alphabet.length)];
  return text;
}

type Kind = FuzzInput["kind"];
interface Input {
  readonly target: FuzzInput["target"];
  readonly kind: Kind;
  readonly value: Uint8Array | string;
}

function generate(): Input {
  const r = random();
  const base = pick(originals);
  if (r < 0.05)
    return {
      target: pick(["parse", "verify"] as const),
      kind: "bytes",
      value: Uint8Array.from({ length: int(600) }, () => int(256)),
    };
  if (r < 0.1) return { target: "verify", kind: "string", value: "alw1_" + randomText(int(1200)) };
  if (r < 0.4)
    return {
      target: pick(["parse", "verify", "verify"] as const),
      kind: "bytes",
      value: mutate(base),
    };
  if (r < 0.55) return { target: "verify-resigned", kind: "bytes", value: resignedMutation() };
  if (r < 0.7) return { target: "verify-cached", kind: "bytes", value: mutate(base) };
  if (r < 0.85) {
    const p = pick(presentations);
    const body = Buffer.from(p.slice(6), "base64url");
    return {
      target: "presentation",
      kind: "string",
      value: "alwp1_" + Buffer.from(mutate(body)).toString("base64url"),
    };
  }
  const p = pick(presentations);
  const header =
    random() < 0.5
      ? `Allowance alwp1_${Buffer.from(mutate(Buffer.from(p.slice(6), "base64url"))).toString("base64url")}`
      : random() < 0.5
        ? randomText(int(300))
        : `Allowance ${formatToken(parseTokenSafe(mutate(base)) ?? (fixture.tokens[0] as Token))}`;
  return { target: "middleware", kind: "string", value: header };
}

function parseTokenSafe(bytes: Uint8Array): Token | undefined {
  try {
    return parseToken(bytes);
  } catch {
    return undefined;
  }
}

const counts = new Map<string, number>();
const crashes: { input: Input; error: string }[] = [];
const acceptances: Input[] = [];
const corpus = new Map<string, FuzzInput & { code: string }>();
const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
const context = { fixture, cached, authorizer, replay: alwaysNew };

const started = Date.now();
for (let i = 0; i < COUNT; i++) {
  const input = generate();
  const encoded: FuzzInput = {
    target: input.target,
    kind: input.kind,
    value: typeof input.value === "string" ? input.value : toBase64url(input.value),
  };
  let outcome: string;
  try {
    outcome = await runFuzzInput(encoded, context);
  } catch (error) {
    crashes.push({
      input,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
    bump(`${input.target}:CRASH`);
    continue;
  }
  if (outcome === "ACCEPTED") acceptances.push(input);
  bump(`${input.target}:${outcome}`);
  const key = `${input.target}:${outcome}`;
  if (WRITE_CORPUS && !corpus.has(key) && outcome !== "ACCEPTED") {
    corpus.set(key, { ...encoded, code: outcome });
  }
  if ((i + 1) % 100_000 === 0)
    console.error(`${i + 1} inputs, ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

const rows = [...counts.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
console.log(
  `fuzz: ${COUNT} inputs in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${option("--seed", 20261123)})`,
);
for (const [key, n] of rows) console.log(`  ${key.padEnd(40)} ${n}`);
console.log(`crashes (untyped exceptions): ${crashes.length}`);
console.log(`acceptances of invalid input: ${acceptances.length}`);
for (const crash of crashes.slice(0, 5)) console.log("  crash:", crash.input.target, crash.error);
for (const input of acceptances.slice(0, 5))
  console.log(
    "  accepted:",
    input.target,
    typeof input.value === "string"
      ? input.value.slice(0, 80)
      : toBase64url(input.value).slice(0, 80),
  );
if (WRITE_CORPUS) {
  const file = join(import.meta.dirname, "..", "test", "fuzz-corpus", "corpus.json");
  writeFileSync(
    file,
    JSON.stringify(
      {
        note: "one input per (target, outcome) seen by scripts/fuzz.ts; keys and chains come from scripts/fuzz-fixture.ts",
        entries: [...corpus.values()],
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`wrote ${corpus.size} corpus entries`);
}
process.exitCode = crashes.length + acceptances.length === 0 ? 0 : 1;
