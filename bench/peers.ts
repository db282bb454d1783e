/**
 * Side by side with the peers: the same delegation story — a root grant and 4 attenuations, each
 * narrowing a budget, a provider list and an expiry — minted, attenuated, verified and measured in
 * Allowance, Biscuit (wasm), UCAN and, as an HMAC reference, macaroons; against the floor of 5 raw
 * node:crypto Ed25519 verifications. Every figure is a median over alternating rounds in one process.
 */
import {
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify as rawVerify,
} from "node:crypto";
import {
  attenuate,
  formatToken,
  mint,
  publicKeyOf,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { encodeToken } from "@allowance/core/format";
import { verify } from "@allowance/verifier";
import {
  AuthorizerBuilder,
  Biscuit,
  BlockBuilder,
  KeyPair as BiscuitKeyPair,
  SignatureAlgorithm,
} from "@biscuit-auth/biscuit-wasm";
import * as ucans from "@ucans/ucans";
import { importMacaroon, newMacaroon, type Macaroon, type MacaroonJSONV2 } from "macaroon";
import { measure, measureAsync, table, type BenchCase } from "./harness.js";
import { fiveLinkStory, warmVerifier } from "./verify.js";

const USD = 1_000_000;
const DAY = 86400;
const PROVIDERS = ["openai", "anthropic", "google", "mistral", "cohere"] as const;

/** Link i (0 = root) of the story: what each library encodes in its own way. */
function storyLink(now: number, i: number) {
  return {
    usdMicros: (100 * USD) >> i,
    providers: PROVIDERS.slice(0, 5 - i),
    exp: now + (7 - i) * DAY,
  };
}

/** The request every verifier authorizes where the library has a request model: 1 USD on openai. */
const REQUEST = { provider: "openai", usdMicros: 1 * USD } as const;

/**
 * Biscuit's 1 ms default `max_time` fails cold calls; these limits are far above what the story
 * needs (a few dozen facts, 2 iterations) and far below anything that could hang.
 */
export const BISCUIT_LIMITS = {
  max_facts: 1000,
  max_iterations: 100,
  max_time_micro: 100_000,
} as const;

export type Kind = "mint" | "attenuate" | "verify-cold" | "verify-warm" | "binary" | "string";

export interface PeerRow {
  readonly library: string;
  readonly measure: string;
  readonly kind: Kind | "floor";
  readonly unit: "µs" | "bytes";
  readonly value: number;
  /** Against the floor, 5 raw Ed25519 verifications (times only). */
  readonly xFloor?: number;
  /** Against Allowance's figure of the same kind. */
  readonly xAllowance?: number;
}

export interface PeersResult {
  readonly rows: PeerRow[];
  readonly floorMicros: number;
  readonly oneRawMicros: number;
  readonly targets: {
    readonly name: string;
    readonly value: number;
    readonly target: string;
    readonly met: boolean;
  }[];
  readonly notes: string[];
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
const setOf = (names: readonly string[]) => `{${names.map((n) => JSON.stringify(n)).join(", ")}}`;
const utf8Bytes = (text: string) => Buffer.byteLength(text, "utf8");

// ---- Allowance -------------------------------------------------------------------------------

async function allowanceCases(now: number) {
  const { token, roots, keys } = await fiveLinkStory(now);
  const [root, ...holders] = keys as [KeyPair, ...KeyPair[]];
  const four: Token = { rootKid: token.rootKid, links: token.links.slice(0, 4) };
  const text = formatToken(token);
  const root0 = storyLink(now, 0);
  const last = storyLink(now, 4);
  const grantOf = (l: ReturnType<typeof storyLink>) => ({
    exp: l.exp,
    usdMicros: l.usdMicros,
    providers: l.providers.map((name) => ({ name })),
  });
  verify(text, { roots, now: () => now * 1000 }); // throws if the story does not verify

  // Warm: the 4-link prefix is cached, the leaf is new every call.
  const cached = warmVerifier(roots, text, now);

  const cases: Record<"mint" | "attenuate" | "verify-cold" | "verify-warm", BenchCase> = {
    mint: {
      name: "allowance mint",
      run: () => mint({ rootKey: root, holder: publicKeyOf(holders[0]!), grant: grantOf(root0) }),
    },
    attenuate: {
      name: "allowance attenuate",
      run: () =>
        attenuate(four, {
          holderKey: holders[3]!,
          holder: publicKeyOf(holders[4]!),
          grant: grantOf(last),
        }),
    },
    "verify-cold": {
      name: "allowance verify cold",
      run: () => verify(text, { roots, now: () => now * 1000 }),
    },
    "verify-warm": {
      name: "allowance verify warm",
      run: () => cached.verify(text, { now: () => now * 1000 }),
    },
  };
  return { cases, binary: encodeToken(token).length, string: utf8Bytes(text) };
}

// ---- Biscuit -----------------------------------------------------------------------------------

function biscuitCases(now: number) {
  const keyPair = new BiscuitKeyPair(SignatureAlgorithm.Ed25519);
  const privateKey = keyPair.getPrivateKey();
  const publicKey = keyPair.getPublicKey();
  // The root grant: the budget as a fact (the authorizer's policy compares the request with it),
  // providers and expiry as checks. Each attenuation can only add checks: a smaller budget, fewer
  // providers, an earlier expiry.
  const rootCode = () => {
    const l = storyLink(now, 0);
    return `budget(${l.usdMicros}); check if provider($p), ${setOf(l.providers)}.contains($p); check if time($t), $t <= ${iso(l.exp)};`;
  };
  const blockCode = (i: number) => {
    const l = storyLink(now, i);
    return `check if spend($s), $s <= ${l.usdMicros}; check if provider($p), ${setOf(l.providers)}.contains($p); check if time($t), $t <= ${iso(l.exp)};`;
  };
  const mintRoot = () => {
    const builder = Biscuit.builder();
    builder.addCode(rootCode());
    return builder.build(privateKey);
  };
  const append = (token: Biscuit, i: number) => {
    const block = new BlockBuilder();
    block.addCode(blockCode(i));
    const next = token.appendBlock(block);
    block.free();
    return next;
  };
  let token = mintRoot();
  let four: Biscuit | undefined;
  for (let i = 1; i < 5; i++) {
    if (i === 4) four = token;
    const next = append(token, i);
    if (i !== 4) token.free();
    token = next;
  }
  const bytes = token.toBytes();
  const text = token.toBase64();
  token.free();
  const authorizerCode = `time(${iso(now)}); provider(${JSON.stringify(REQUEST.provider)}); spend(${REQUEST.usdMicros}); allow if budget($b), spend($s), $s <= $b;`;
  const authorize = () => {
    const parsed = Biscuit.fromBase64(text, publicKey);
    const builder = new AuthorizerBuilder();
    builder.addCode(authorizerCode);
    const authorizer = builder.buildAuthenticated(parsed);
    try {
      return authorizer.authorizeWithLimits(BISCUIT_LIMITS);
    } finally {
      authorizer.free();
      parsed.free();
    }
  };
  authorize(); // throws if the story is not authorized
  // The same request for a provider the leaf dropped must be denied.
  const denied = (() => {
    const parsed = Biscuit.fromBase64(text, publicKey);
    const builder = new AuthorizerBuilder();
    builder.addCode(authorizerCode.replace(`"${REQUEST.provider}"`, '"cohere"'));
    const authorizer = builder.buildAuthenticated(parsed);
    try {
      authorizer.authorizeWithLimits(BISCUIT_LIMITS);
      return false;
    } catch {
      return true;
    } finally {
      authorizer.free();
      parsed.free();
    }
  })();
  if (!denied) throw new Error("biscuit story: a dropped provider was authorized");

  const cases = {
    mint: { name: "biscuit mint", run: () => mintRoot().free() },
    attenuate: { name: "biscuit attenuate", run: () => append(four!, 4).free() },
    "verify-cold": {
      name: "biscuit parse + signatures",
      run: () => Biscuit.fromBase64(text, publicKey).free(),
    },
    authorize: { name: "biscuit parse + signatures + authorization", run: authorize },
  } satisfies Record<string, BenchCase>;
  return { cases, binary: bytes.length, string: utf8Bytes(text) };
}

// ---- UCAN --------------------------------------------------------------------------------------

/** One capability per provider, the budget in the ability: `spend/usd-micros/<amount>` on `llm:<provider>`. */
const ucanCapability = (provider: string, usdMicros: number): ucans.Capability => ({
  with: { scheme: "llm", hierPart: provider },
  can: { namespace: "spend", segments: ["usd-micros", String(usdMicros)] },
});

/** Narrowing as UCAN checks it at every link: same provider, same unit, an amount no larger. */
const ucanSemantics: ucans.DelegationSemantics = {
  canDelegateResource: (parent, child) =>
    parent.scheme === child.scheme && parent.hierPart === child.hierPart,
  canDelegateAbility: (parent, child) => {
    if (parent === ucans.ability.SUPERUSER || child === ucans.ability.SUPERUSER) return false;
    const [parentUnit, parentAmount] = parent.segments;
    const [childUnit, childAmount] = child.segments;
    if (
      parent.namespace !== child.namespace ||
      parentUnit !== childUnit ||
      parentAmount === undefined ||
      childAmount === undefined
    )
      return false;
    return (
      /^\d+$/.test(parentAmount) &&
      /^\d+$/.test(childAmount) &&
      BigInt(childAmount) <= BigInt(parentAmount)
    );
  },
};

async function ucanCases(now: number) {
  const keys = await Promise.all([0, 1, 2, 3, 4, 5].map(() => ucans.EdKeypair.create()));
  const link = (i: number, proofs: string[]) => {
    const l = storyLink(now, i);
    return ucans.build({
      issuer: keys[i]!,
      audience: keys[i + 1]!.did(),
      expiration: l.exp,
      capabilities: l.providers.map((p) => ucanCapability(p, l.usdMicros)),
      proofs,
    });
  };
  let encoded = ucans.encode(await link(0, []));
  let four = encoded;
  for (let i = 1; i < 5; i++) {
    if (i === 4) four = encoded;
    encoded = ucans.encode(await link(i, [encoded]));
  }
  const text = encoded;
  const options = (provider: string) => ({
    audience: keys[5]!.did(),
    semantics: ucanSemantics,
    requiredCapabilities: [
      { capability: ucanCapability(provider, REQUEST.usdMicros), rootIssuer: keys[0]!.did() },
    ],
  });
  const check = async () => {
    const result = await ucans.verify(text, options(REQUEST.provider));
    if (!result.ok)
      throw new Error(`ucan story did not verify: ${result.error.map(String).join("; ")}`);
    return result;
  };
  await check();
  if ((await ucans.verify(text, options("cohere"))).ok)
    throw new Error("ucan story: a dropped provider was authorized");
  const cases = {
    mint: { name: "ucan mint", run: () => link(0, []) },
    attenuate: { name: "ucan attenuate", run: () => link(4, [four]) },
    "verify-cold": { name: "ucan verify", run: check },
  };
  // A UCAN travels as its JWT string; its bytes are that string's bytes (there is no binary form).
  return { cases, binary: utf8Bytes(text), string: utf8Bytes(text) };
}

// ---- Macaroon (HMAC reference) ----------------------------------------------------------------

/**
 * The libmacaroons v2 binary format, written here from `exportJSON()` because `exportBinary()` in
 * macaroon 3.0.4 crashes once its buffer must grow (4+ caveats). Same bytes as a working
 * `exportBinary()`: version 2, [location], identifier, EOS, per caveat [location] id [vid] EOS, EOS,
 * signature. The string form is this, base64url without padding (what `importMacaroon` takes).
 */
export function macaroonV2Binary(json: MacaroonJSONV2): Uint8Array {
  const bytesOf = (plain: string | undefined, b64: string | undefined) =>
    plain !== undefined
      ? Buffer.from(plain, "utf8")
      : b64 !== undefined
        ? Buffer.from(b64, "base64")
        : undefined;
  const out: number[] = [2];
  const field = (type: number, data: Uint8Array | undefined) => {
    if (data === undefined) return;
    out.push(type);
    let n = data.length;
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n, ...data);
  };
  const EOS = 0,
    LOCATION = 1,
    IDENTIFIER = 2,
    VID = 4,
    SIGNATURE = 6;
  field(LOCATION, json.l === undefined ? undefined : Buffer.from(json.l, "utf8"));
  field(IDENTIFIER, bytesOf(json.i, json.i64));
  out.push(EOS);
  for (const c of json.c ?? []) {
    field(LOCATION, c.l === undefined ? undefined : Buffer.from(c.l, "utf8"));
    field(IDENTIFIER, bytesOf(c.i, c.i64));
    field(VID, bytesOf(c.v, c.v64));
    out.push(EOS);
  }
  out.push(EOS);
  field(SIGNATURE, bytesOf(json.s, json.s64));
  return Uint8Array.from(out);
}

function macaroonCases(now: number) {
  const rootKey = new Uint8Array(randomBytes(32));
  const caveats = (i: number) => {
    const l = storyLink(now, i);
    return [
      `budget-usd-micros <= ${l.usdMicros}`,
      `provider in ${l.providers.join(",")}`,
      `exp <= ${l.exp}`,
    ];
  };
  const mintRoot = () => {
    const m = newMacaroon({ identifier: "story-root", location: "", rootKey, version: 2 });
    for (const c of caveats(0)) m.addFirstPartyCaveat(c);
    return m;
  };
  const append = (m: Macaroon, i: number) => {
    const next = m.clone();
    for (const c of caveats(i)) next.addFirstPartyCaveat(c);
    return next;
  };
  let m = mintRoot();
  let four = m;
  for (let i = 1; i < 5; i++) {
    if (i === 4) four = m;
    m = append(m, i);
  }
  const json = m.exportJSON();
  const binary = macaroonV2Binary(json);
  const text = Buffer.from(binary).toString("base64url");
  const check = (provider: string) => (condition: string) => {
    const [name, op, value] = condition.split(" ");
    if (name === "budget-usd-micros" && op === "<=")
      return REQUEST.usdMicros <= Number(value) ? null : "over budget";
    if (name === "provider" && op === "in")
      return value?.split(",").includes(provider) ? null : "provider not allowed";
    if (name === "exp" && op === "<=") return now <= Number(value) ? null : "expired";
    return "unknown caveat";
  };
  const verifyText = (provider: string) => importMacaroon(text).verify(rootKey, check(provider));
  verifyText(REQUEST.provider); // throws if the encoding does not round-trip or the story fails
  let denied = false;
  try {
    verifyText("cohere");
  } catch {
    denied = true;
  }
  if (!denied) throw new Error("macaroon story: a dropped provider was authorized");
  const cases = {
    mint: { name: "macaroon mint", run: mintRoot },
    attenuate: { name: "macaroon attenuate", run: () => append(four, 4) },
    "verify-cold": { name: "macaroon import + verify", run: () => verifyText(REQUEST.provider) },
  } satisfies Record<string, BenchCase>;
  return {
    cases,
    binary: binary.length,
    string: utf8Bytes(text),
    json: utf8Bytes(JSON.stringify(json)),
    caveats: m.caveats.length,
  };
}

// ---- Floor and the run -------------------------------------------------------------------------

function floorCases() {
  const raw = Array.from({ length: 5 }, (_, i) => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const message = Buffer.alloc(200, i);
    return {
      key: createPublicKey(publicKey.export({ format: "pem", type: "spki" })),
      message,
      signature: sign(null, message, privateKey),
    };
  });
  const one = raw[0]!;
  return {
    five: {
      name: "5 raw node:crypto verifies",
      run: () => {
        for (const r of raw)
          if (!rawVerify(null, r.message, r.key, r.signature)) throw new Error("floor failed");
      },
    },
    one: {
      name: "1 raw node:crypto verify",
      run: () => {
        if (!rawVerify(null, one.message, one.key, one.signature)) throw new Error("floor failed");
      },
    },
  } satisfies Record<string, BenchCase>;
}

export async function benchPeers(
  options: { rounds?: number; ucanRounds?: number } = {},
): Promise<PeersResult> {
  const now = Math.floor(Date.now() / 1000);
  const floor = floorCases();
  const allowance = await allowanceCases(now);
  const biscuit = biscuitCases(now);
  const ucan = await ucanCases(now);
  const macaroon = macaroonCases(now);

  // Everything synchronous alternates in one set of rounds; UCAN's calls take milliseconds and
  // are asynchronous, so they get their own (fewer) rounds, with the floor measured among them too.
  const sync: BenchCase[] = [
    floor.five,
    floor.one,
    ...Object.values(allowance.cases),
    ...Object.values(biscuit.cases),
    ...Object.values(macaroon.cases),
  ];
  // Many short rounds: a burst from a neighbour on a shared machine then lands on every case alike.
  const syncFigures = measure(sync, { rounds: options.rounds ?? 41, minRoundMillis: 15 });
  const asyncFigures = await measureAsync(
    [
      ...Object.values(ucan.cases),
      { name: "5 raw node:crypto verifies (ucan rounds)", run: async () => floor.five.run() },
    ],
    { rounds: options.ucanRounds ?? 7, warmup: 3 },
  );
  const micros = new Map([...syncFigures, ...asyncFigures].map((f) => [f.name, f.micros]));
  const t = (c: { name: string }) => micros.get(c.name)!;

  const floorMicros = t(floor.five);
  const oneRawMicros = t(floor.one);
  const base: Record<Kind, number> = {
    mint: t(allowance.cases.mint),
    attenuate: t(allowance.cases.attenuate),
    "verify-cold": t(allowance.cases["verify-cold"]),
    "verify-warm": t(allowance.cases["verify-warm"]),
    binary: allowance.binary,
    string: allowance.string,
  };
  const rows: PeerRow[] = [];
  const time = (library: string, measureName: string, kind: Kind | "floor", value: number) =>
    rows.push({
      library,
      measure: measureName,
      kind,
      unit: "µs",
      value,
      xFloor: value / floorMicros,
      ...(kind === "floor" ? {} : { xAllowance: value / base[kind] }),
    });
  const size = (library: string, kind: "binary" | "string", value: number, how: string) =>
    rows.push({
      library,
      measure: `size, ${kind === "binary" ? "binary" : "string"} (${how})`,
      kind,
      unit: "bytes",
      value,
      xAllowance: value / base[kind],
    });

  time("floor", "5 raw node:crypto Ed25519 verifies", "floor", floorMicros);
  time("floor", "1 raw node:crypto Ed25519 verify", "floor", oneRawMicros);

  time("Allowance", "mint root", "mint", base.mint);
  time("Allowance", "attenuate once (4 → 5 links)", "attenuate", base.attenuate);
  time(
    "Allowance",
    "verify 5 links, cold (parse + signatures + narrowing)",
    "verify-cold",
    base["verify-cold"],
  );
  time(
    "Allowance",
    "verify 5 links, warm (4-link prefix cached)",
    "verify-warm",
    base["verify-warm"],
  );
  size("Allowance", "binary", allowance.binary, "CBOR");
  size("Allowance", "string", allowance.string, "base64url token");

  time("Biscuit", "mint root", "mint", t(biscuit.cases.mint));
  time("Biscuit", "attenuate once (4 → 5 blocks)", "attenuate", t(biscuit.cases.attenuate));
  time(
    "Biscuit",
    "verify 5 blocks, cold (parse + signatures)",
    "verify-cold",
    t(biscuit.cases["verify-cold"]),
  );
  time(
    "Biscuit",
    "verify 5 blocks, cold (parse + signatures + authorization)",
    "verify-cold",
    t(biscuit.cases.authorize),
  );
  size("Biscuit", "binary", biscuit.binary, "protobuf");
  size("Biscuit", "string", biscuit.string, "base64url");

  time("UCAN", "mint root", "mint", t(ucan.cases.mint));
  time("UCAN", "attenuate once (4 → 5 UCANs)", "attenuate", t(ucan.cases.attenuate));
  time(
    "UCAN",
    "verify 5 UCANs, cold (signatures + capability chain)",
    "verify-cold",
    t(ucan.cases["verify-cold"]),
  );
  size("UCAN", "binary", ucan.binary, "JWT, no binary form");
  size("UCAN", "string", ucan.string, "JWT, proofs embedded");

  time("Macaroon (HMAC)", "mint root", "mint", t(macaroon.cases.mint));
  time("Macaroon (HMAC)", "attenuate once (+3 caveats)", "attenuate", t(macaroon.cases.attenuate));
  time(
    "Macaroon (HMAC)",
    `verify ${macaroon.caveats} caveats, cold (import + HMAC chain)`,
    "verify-cold",
    t(macaroon.cases["verify-cold"]),
  );
  size("Macaroon (HMAC)", "binary", macaroon.binary, "v2 binary, encoded here");
  size("Macaroon (HMAC)", "string", macaroon.string, "base64url of v2 binary");

  const ucanFloor = micros.get("5 raw node:crypto verifies (ucan rounds)")!;
  const cold = base["verify-cold"] / floorMicros;
  const warm = base["verify-warm"] / oneRawMicros;
  const ofBiscuit = allowance.binary / biscuit.binary;
  const ofUcan = allowance.string / ucan.string;
  return {
    rows,
    floorMicros,
    oneRawMicros,
    targets: [
      { name: "cold verify, 5 links, × floor", value: cold, target: "≤ 1.10", met: cold <= 1.1 },
      {
        name: "warm verify (4-link prefix cached), × 1 raw verify",
        value: warm,
        target: "≤ 1.30",
        met: warm <= 1.3,
      },
      {
        name: "token bytes, × Biscuit (binary)",
        value: ofBiscuit,
        target: "≤ 0.70",
        met: ofBiscuit <= 0.7,
      },
      {
        name: "token bytes, × UCAN (as transmitted)",
        value: ofUcan,
        target: "≤ 0.20",
        met: ofUcan <= 0.2,
      },
    ],
    notes: [
      `story: a root grant and 4 attenuations; budget ${100} USD halving per link, providers ${PROVIDERS.join(", ")} (one fewer per link), expiry 7 days minus one per link`,
      "Allowance: fiveLinkStory from bench/verify.ts; verify from the string form; warm = createVerifier with the 4-link prefix cached, the leaf verified every call",
      `Biscuit (@biscuit-auth/biscuit-wasm 0.6.0, Ed25519): budget as a root fact, each block adds checks on spend, provider set and time; parsed from base64 with the root PublicKey object kept; authorization builds a fresh authorizer (time, provider, spend facts, allow if spend <= budget) with limits ${JSON.stringify(BISCUIT_LIMITS)}`,
      "UCAN (@ucans/ucans 0.12.0, EdDSA): one capability per provider, budget in the ability (spend/usd-micros/N), custom semantics that require amount to narrow; verify checks the chain for 1 USD on openai from the root DID; the leaf embeds its proofs",
      `UCAN rounds: ${options.ucanRounds ?? 7}; floor measured among them: ${ucanFloor.toFixed(1)} µs (main rounds: ${floorMicros.toFixed(1)} µs)`,
      `Macaroon (macaroon 3.0.4): 3 first-party caveats per link (${macaroon.caveats} in all), one shared HMAC root key, no holder keys: a reference, not like for like. exportBinary() crashes with 4+ caveats in 3.0.4, so the binary form is the libmacaroons v2 binary format written here from exportJSON() (bench/peers.ts macaroonV2Binary; importMacaroon reads it back); its v2 JSON form is ${macaroon.json} bytes`,
    ],
  };
}

const fmt = (row: PeerRow) =>
  row.unit === "µs" ? `${row.value.toFixed(row.value >= 10_000 ? 0 : 1)} µs` : `${row.value} B`;
const ratio = (x: number | undefined) =>
  x === undefined ? "—" : x >= 100 ? x.toFixed(0) : x.toFixed(2);

export function peersReport(result: PeersResult): string {
  return [
    table(
      ["library", "measure", "median", "× floor", "× Allowance"],
      result.rows.map((r) => [r.library, r.measure, fmt(r), ratio(r.xFloor), ratio(r.xAllowance)]),
      2,
    ),
    "",
    ...result.targets.map(
      (t) => `target ${t.name}: ${t.value.toFixed(3)} (${t.target}) ${t.met ? "met" : "not met"}`,
    ),
    "",
    ...result.notes.map((n) => `- ${n}`),
  ].join("\n");
}

/** The README table: the same rows, in Markdown. */
export function peersMarkdown(result: PeersResult): string {
  return [
    "| library | measure | median | × floor | × Allowance |",
    "| --- | --- | ---: | ---: | ---: |",
    ...result.rows.map(
      (r) =>
        `| ${r.library} | ${r.measure} | ${fmt(r)} | ${ratio(r.xFloor)} | ${ratio(r.xAllowance)} |`,
    ),
  ].join("\n");
}
