/**
 * What tool-argument constraints cost (spec/arguments.md): verifying the 5-link story with a
 * constraint on every link against the same story without; one check per common kind; and the
 * bytes each constraint adds to a token.
 */
import {
  attenuate,
  checkArguments,
  checkArgumentsJson,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
  type KeyPair,
  type Token,
  type ToolArguments,
} from "@allowance/core";
import { encodePayload, encodeToken } from "@allowance/core/format";
import { verify } from "@allowance/verifier";
import { measure, median, table, type BenchFigure } from "./harness.js";

const USD = 1_000_000;
const PROVIDERS = ["openai", "anthropic", "google", "mistral", "cohere"];
/** Each link's constraint: the mailer's recipients, narrowed down the chain. */
const DOMAINS = [
  ["*.example.com", "example.com"],
  ["*.eu.example.com", "example.com"],
  ["a.eu.example.com", "example.com"],
  ["example.com"],
  ["example.com"],
];

function mailArgs(domains: readonly string[]): ToolArguments[] {
  return [
    {
      tool: "mail.send",
      constraints: [{ name: "to", kind: "emailDomain", domains: [...domains] }],
    },
  ];
}

/**
 * bench/verify.ts's story (budget, providers, expiry narrowed on each link): plain, with args on
 * every link, or with a label of the args' size instead (what the bytes alone cost).
 */
function story(
  keys: readonly KeyPair[],
  nowSeconds: number,
  extra: "none" | "args" | "label",
): Token {
  const [root, ...holders] = keys as [KeyPair, ...KeyPair[]];
  const grant = (i: number): GrantFields => {
    const args = mailArgs(DOMAINS[i] as string[]);
    // A label whose encoding is as long as the args field's (text head + bytes vs. map).
    const link = { sub: new Uint8Array(32), nonce: new Uint8Array(8) };
    const bytes = encodePayload({ ...link, args }).length - encodePayload(link).length - 1;
    return {
      exp: nowSeconds + (7 - i) * 86_400,
      usdMicros: (100 * USD) >> i,
      providers: PROVIDERS.slice(0, 5 - i).map((name) => ({ name })),
      ...(extra === "args" ? { args } : extra === "label" ? { label: "x".repeat(bytes - 2) } : {}),
    };
  };
  let token = mint({ rootKey: root, holder: publicKeyOf(holders[0] as KeyPair), grant: grant(0) });
  for (let i = 1; i < 5; i++) {
    token = attenuate(token, {
      holderKey: holders[i - 1] as KeyPair,
      holder: publicKeyOf(holders[i] as KeyPair),
      grant: grant(i),
    });
  }
  return token;
}

export interface ArgsBench {
  readonly verify: BenchFigure[];
  /** Verify with a constraint on every link over verify without (median of paired rounds). */
  readonly verifyRatio: number;
  /** The same over verify with labels of the same size: the cost of args beyond their bytes. */
  readonly verifyRatioSameSize: number;
  readonly checks: BenchFigure[];
  readonly bytesWithout: number;
  readonly bytesWith: number;
  /** Binary bytes of one constraint's entry, by kind, as the `args` field of a link. */
  readonly bytesPerKind: { readonly kind: string; readonly bytes: number }[];
}

const KIND_CASES: { kind: string; args: ToolArguments[]; call: Record<string, unknown> }[] = [
  {
    kind: "exact",
    args: one({ kind: "exact", value: "ops@example.com" }),
    call: { a: "ops@example.com" },
  },
  {
    kind: "oneOf",
    args: one({ kind: "oneOf", values: ["GET", "HEAD", "OPTIONS"] }),
    call: { a: "HEAD" },
  },
  { kind: "range", args: one({ kind: "range", min: 1, max: 100 }), call: { a: 42 } },
  { kind: "prefix", args: one({ kind: "prefix", prefix: "ticket-" }), call: { a: "ticket-4711" } },
  {
    kind: "glob",
    args: one({ kind: "glob", glob: "/tmp/out/*/*.csv" }),
    call: { a: "/tmp/out/q3/sales.csv" },
  },
  {
    kind: "url",
    args: one({ kind: "url", urls: ["https://api.example.com/v1/", "https://*.cdn.example/"] }),
    call: { a: "https://api.example.com/v1/items/42?expand=owner" },
  },
  {
    kind: "emailDomain",
    args: one({ kind: "emailDomain", domains: ["example.com", "*.corp.example"] }),
    call: { a: "alice.smith@eu.corp.example" },
  },
  {
    kind: "maxLength",
    args: one({ kind: "maxLength", max: 200 }),
    call: { a: "Quarterly report" },
  },
];

function one(constraint: Record<string, unknown>): ToolArguments[] {
  return [{ tool: "t", constraints: [{ name: "a", ...constraint } as never] }];
}

export async function benchArgs(): Promise<ArgsBench> {
  const nowSeconds = Math.floor(Date.now() / 1000);
  const keys = await Promise.all([0, 1, 2, 3, 4, 5].map(() => generateKeyPair()));
  const roots = trustedRoots([keys[0] as KeyPair]);
  const plain = story(keys, nowSeconds, "none");
  const constrained = story(keys, nowSeconds, "args");
  const labelled = story(keys, nowSeconds, "label");
  const plainText = formatToken(plain);
  const constrainedText = formatToken(constrained);
  const labelledText = formatToken(labelled);
  const now = () => nowSeconds * 1000;

  const verifyCases = [
    { name: "verify, 5 links, no args", run: () => verify(plainText, { roots, now }) },
    {
      name: "verify, 5 links, an emailDomain constraint on every link",
      run: () => verify(constrainedText, { roots, now }),
    },
    {
      name: "verify, 5 links, a label as long as that constraint instead",
      run: () => verify(labelledText, { roots, now }),
    },
  ];
  const verifyFigures = measure(verifyCases, { rounds: 61, minRoundMillis: 15 });
  const ratios = pairedRatios(verifyCases, 301, 8);

  // The leaf's effective args as the enforcer gets them: from a verified, frozen chain.
  const leafArgs = verify(constrainedText, { roots, now }).grant.args as ToolArguments[];
  const body = '{"to":"alice@example.com","subject":"Quarterly report","body":"Hello"}';
  const mailer = [
    {
      tool: "mail.send",
      constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
      allowUnnamed: true,
    },
  ] as ToolArguments[];
  const checkFigures = measure(
    [
      ...KIND_CASES.map((c) => ({
        name: `check: ${c.kind}`,
        run: () => {
          if (checkArguments(c.args, "t", c.call) !== null) throw new Error(`${c.kind} refused`);
        },
      })),
      {
        name: "check: the story's leaf, mail.send to example.com",
        run: () => {
          if (checkArguments(leafArgs, "mail.send", { to: "alice@example.com" }) !== null)
            throw new Error("refused");
        },
      },
      {
        name: "check from a JSON body (strict read, 3 members)",
        run: () => {
          if (checkArgumentsJson(mailer, "mail.send", body) !== null) throw new Error("refused");
        },
      },
    ],
    { rounds: 31, minRoundMillis: 15 },
  );

  // Bytes: a 1-link token with only exp, and the same with one constraint of each kind.
  const root = keys[0] as KeyPair;
  const holder = publicKeyOf(keys[1] as KeyPair);
  const nonce = new Uint8Array(8);
  const size = (grant: GrantFields) =>
    encodeToken(mint({ rootKey: root, holder, grant, nonce })).length;
  const base = size({ exp: nowSeconds });
  const bytesPerKind = KIND_CASES.map((c) => ({
    kind: c.kind,
    bytes: size({ exp: nowSeconds, args: c.args }) - base,
  }));
  bytesPerKind.push({
    kind: "forbidden",
    bytes: size({ exp: nowSeconds, args: one({ kind: "forbidden" }) }) - base,
  });

  return {
    verify: verifyFigures,
    verifyRatio: ratios[1] as number,
    verifyRatioSameSize: (ratios[1] as number) / (ratios[2] as number),
    checks: checkFigures,
    bytesWithout: encodeToken(plain).length,
    bytesWith: encodeToken(constrained).length,
    bytesPerKind,
  };
}

/**
 * Each case's time over the first case's, as the median over many short rounds of the ratio
 * within one round: a neighbour's burst on a shared machine then slows both sides of a ratio.
 * The order of the cases rotates from round to round.
 */
function pairedRatios(
  cases: readonly { run: () => unknown }[],
  rounds: number,
  callsPerRound: number,
): number[] {
  const ratios = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    const times = cases.map(() => 0);
    for (let k = 0; k < cases.length; k++) {
      const i = (k + r) % cases.length;
      const start = performance.now();
      for (let n = 0; n < callsPerRound; n++) (cases[i] as { run: () => unknown }).run();
      times[i] = performance.now() - start;
    }
    cases.forEach((_, i) =>
      (ratios[i] as number[]).push((times[i] as number) / (times[0] as number)),
    );
  }
  return ratios.map((values) => median(values));
}

export function argsReport(result: ArgsBench): string {
  const first = (result.verify[0] as BenchFigure).micros;
  return [
    table(
      ["case", "median µs", "× no args"],
      result.verify.map((f) => [f.name, f.micros.toFixed(1), (f.micros / first).toFixed(3)]),
    ),
    `paired rounds (median of per-round ratios): args × ${result.verifyRatio.toFixed(3)} of no args, ` +
      `× ${result.verifyRatioSameSize.toFixed(3)} of labels of the same size`,
    "",
    table(
      ["one check", "median µs"],
      result.checks.map((f) => [f.name, f.micros.toFixed(2)]),
    ),
    "",
    `5-link token: ${result.bytesWithout} bytes without args, ${result.bytesWith} with ` +
      `(+${result.bytesWith - result.bytesWithout}, ${((result.bytesWith - result.bytesWithout) / 5).toFixed(0)} per link)`,
    table(
      ['one constraint (tool "t", argument "a")', "bytes added"],
      result.bytesPerKind.map((b) => [b.kind, String(b.bytes)]),
    ),
  ].join("\n");
}
