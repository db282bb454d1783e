/**
 * `allowance demo`: the whole story on the embedded default (an in-memory ledger), with no keys or
 * servers to set up. A root mints a grant for an orchestrator; the orchestrator narrows it for three
 * sub-agents; the sub-agents call a mock LLM gateway and mock tools over real HTTP on 127.0.0.1,
 * through the verifier middleware and the enforcer; one loops until its cap stops it, one may mail
 * only @example.com and tries another domain, then tries to widen its grant, and a thief tries a
 * stolen token. It ends with a tree of budgets per link.
 */
import type { AddressInfo } from "node:net";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import {
  AllowanceError,
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { Enforcer, type Decision, type Ledger, type RemainingReport } from "@allowance/enforcer";
import {
  MemoryReplayCache,
  allowanceMiddleware,
  present,
  verify,
  type AllowanceContext,
  type VerifiedChain,
} from "@allowance/verifier";
import { formatUsd, groupDigits } from "./units.js";

const USD = 1_000_000;
/** Mock prices, micro-dollars per million tokens. */
const PRICES: Record<string, { input: number; output: number }> = {
  "gpt-4o-mini": { input: 150_000, output: 600_000 },
  "claude-sonnet-4": { input: 3_000_000, output: 15_000_000 },
};
const POLICY = { tools: { send_email: 10, "search.*": 0 }, default: 5 };

export interface DemoStep {
  readonly agent: string;
  readonly action: string;
  readonly outcome: string;
  readonly status: number;
  /** ALLOW, ALLOW_WITH_CAPS, DENY:<reason>, or the verifier's error code. */
  readonly decision: string;
  readonly usdMicros?: number;
  readonly tokens?: number;
}

export interface DemoBudgetNode {
  readonly name: string;
  readonly linkId: string;
  /** `remaining` as in `ledger remaining`: cap − spent − held, null without a cap. */
  readonly limits: readonly {
    field: string;
    cap: number | null;
    spent: number;
    held: number;
    remaining: number | null;
  }[];
  readonly children: readonly DemoBudgetNode[];
}

export interface DemoResult {
  readonly steps: readonly DemoStep[];
  readonly refusedWidening: { readonly code: string; readonly fields: readonly string[] };
  readonly tree: DemoBudgetNode;
  readonly tokenBytes: Readonly<Record<string, number>>;
}

export interface DemoOptions {
  readonly ledger?: Ledger;
  /** Called for each step as it happens, for live output. */
  readonly onStep?: (step: DemoStep) => void;
}

interface Agent {
  readonly name: string;
  readonly key: KeyPair;
  readonly token: Token;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const now = Math.floor(Date.now() / 1000);
  const [root, orchestratorKey, researcherKey, writerKey, mailerKey, thiefKey] = (await Promise.all(
    [0, 1, 2, 3, 4, 5].map(() => generateKeyPair()),
  )) as KeyPair[] as [KeyPair, KeyPair, KeyPair, KeyPair, KeyPair, KeyPair];
  const roots = trustedRoots([root]);
  const enforcer = new Enforcer({
    ...(options.ledger === undefined ? {} : { ledger: options.ledger }),
    policy: POLICY,
  });
  const server = await startGateway(roots, enforcer);
  const audience = server.audience;
  const steps: DemoStep[] = [];
  const record = (step: DemoStep) => {
    steps.push(step);
    options.onStep?.(step);
  };

  try {
    const orchestrator = mint({
      rootKey: root,
      holder: publicKeyOf(orchestratorKey),
      grant: {
        exp: now + 3600,
        depth: 2,
        usdMicros: 10 * USD,
        tokens: 200_000,
        providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 5 * USD }],
        tools: ["search.*", "send_email"],
        risk: 50,
        aud: [audience],
        label: "run-42",
      },
    });
    const delegate = (key: KeyPair, name: string, grant: GrantFields): Agent => ({
      name,
      key,
      token: attenuate(orchestrator, {
        holderKey: orchestratorKey,
        holder: publicKeyOf(key),
        grant: { ...grant, label: `run-42/${name}` },
      }),
    });
    const researcher = delegate(researcherKey, "researcher", {
      usdMicros: 2 * USD,
      providers: [{ name: "openai" }],
      tools: ["search.*"],
      risk: 0,
    });
    const writer = delegate(writerKey, "writer", {
      tokens: 50_000,
      providers: [{ name: "anthropic" }],
      tools: [],
    });
    // The mailer may mail only @example.com (spec/arguments.md), with a subject of at most 200 bytes.
    const mailer = delegate(mailerKey, "mailer", {
      usdMicros: 500_000,
      tools: ["send_email"],
      args: [
        {
          tool: "send_email",
          constraints: [
            { name: "to", kind: "emailDomain", domains: ["example.com"] },
            { name: "subject", kind: "maxLength", max: 200 },
          ],
        },
      ],
      risk: 20,
    });

    const call = async (
      agent: Agent,
      path: string,
      body: object,
      signer: KeyPair = agent.key,
      bare = false,
    ): Promise<{ status: number; json: Record<string, unknown> }> => {
      const credential = bare
        ? formatToken(agent.token)
        : present(agent.token, signer, { aud: audience, method: "POST", path });
      const response = await fetch(server.url + path, {
        method: "POST",
        headers: { authorization: `Allowance ${credential}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, json: (await response.json()) as Record<string, unknown> };
    };
    const step = (
      agent: string,
      action: string,
      result: { status: number; json: Record<string, unknown> },
    ) => {
      const decision = String(result.json["decision"] ?? result.json["code"] ?? result.status);
      const usage = result.json["usage"] as { tokens?: number; usdMicros?: number } | undefined;
      record({
        agent,
        action,
        status: result.status,
        decision,
        outcome: String(result.json["outcome"] ?? result.json["detail"] ?? ""),
        ...(usage?.tokens === undefined ? {} : { tokens: usage.tokens }),
        ...(usage?.usdMicros === undefined ? {} : { usdMicros: usage.usdMicros }),
      });
      return decision;
    };

    // The researcher searches and summarises: everything within its grant.
    for (const query of ["agent budget overruns", "capability tokens", "reserve commit ledgers"]) {
      step(
        "researcher",
        `search "${query}"`,
        await call(researcher, "/tools/search.web", { query }),
      );
    }
    step(
      "researcher",
      "summarise with gpt-4o-mini",
      await call(researcher, "/llm/openai", {
        model: "gpt-4o-mini",
        max_tokens: 2000,
        prompt: "Summarise the findings. ".repeat(40),
      }),
    );
    // ...but it may not use a provider its grant leaves out.
    step(
      "researcher",
      "try claude-sonnet-4",
      await call(researcher, "/llm/anthropic", {
        model: "claude-sonnet-4",
        max_tokens: 1000,
        prompt: "Hello",
      }),
    );

    // The writer loops: the same large request again and again until its token cap stops it.
    for (let i = 1; i <= 10; i++) {
      const decision = step(
        "writer",
        `draft #${i} (max_tokens 9000)`,
        await call(writer, "/llm/anthropic", {
          model: "claude-sonnet-4",
          max_tokens: 9000,
          prompt: "Write the report. ".repeat(50),
        }),
      );
      if (decision.startsWith("DENY")) break;
    }

    // The mailer sends email until its risk points run out; to another domain its grant says no,
    // before anything is held.
    const mails = [
      "team@example.com",
      "press@rival.example",
      "team@example.com",
      "team@example.com",
    ];
    for (const [i, to] of mails.entries())
      step(
        "mailer",
        `send_email #${i + 1} to ${to}`,
        await call(mailer, "/tools/send_email", { to, subject: `Report ${i + 1}` }),
      );

    // The mailer tries to hand a helper more than it has.
    let refusedWidening: DemoResult["refusedWidening"] = { code: "none", fields: [] };
    try {
      attenuate(mailer.token, {
        holderKey: mailerKey,
        holder: publicKeyOf(thiefKey),
        grant: { usdMicros: 5 * USD, tools: ["*"], risk: 100 },
      });
    } catch (error) {
      if (!(error instanceof AllowanceError)) throw error;
      refusedWidening = { code: error.code, fields: error.violations.map((v) => v.field) };
    }
    record({
      agent: "mailer",
      action: "delegate $5, any tool, 100 risk",
      status: 0,
      decision: refusedWidening.code,
      outcome: `refused: wider on ${refusedWidening.fields.join(", ")}`,
    });

    // A thief copies the researcher's token: without the researcher's key it is useless.
    step(
      "thief",
      "search with the stolen bare token",
      await call(researcher, "/tools/search.web", { query: "secrets" }, researcherKey, true),
    );
    step(
      "thief",
      "search, presenting with its own key",
      await call(researcher, "/tools/search.web", { query: "secrets" }, thiefKey),
    );

    const chains = [researcher, writer, mailer].map(
      (agent) => [agent.name, verify(agent.token, { roots })] as const,
    );
    const reports = await Promise.all(
      chains.map(async ([name, chain]) => [name, await enforcer.remaining(chain)] as const),
    );
    const tree = budgetTree(reports);
    return {
      steps,
      refusedWidening,
      tree,
      tokenBytes: Object.fromEntries(
        [researcher, writer, mailer].map((a) => [a.name, formatToken(a.token).length]),
      ),
    };
  } finally {
    await server.close();
    await enforcer.ledger.close();
  }
}

function budgetTree(reports: readonly (readonly [string, RemainingReport])[]): DemoBudgetNode {
  type Limit = RemainingReport["links"][number]["limits"][number];
  const node = (
    name: string,
    linkId: string,
    limits: readonly Limit[],
    children: DemoBudgetNode[],
  ): DemoBudgetNode => ({
    name,
    linkId,
    limits: limits
      .filter((l) => l.kind !== "requests" && (l.cap !== null || l.spent > 0 || l.held > 0))
      .map((l) => ({
        field: l.field,
        cap: l.cap,
        spent: l.spent,
        held: l.held,
        remaining: l.remaining,
      })),
    children,
  });
  const [first] = reports;
  if (first === undefined) throw new Error("no chains");
  // The orchestrator's link is shared by every chain; each report lists the fields its leaf uses.
  const rootLimits = new Map<string, Limit>();
  for (const [, report] of reports)
    for (const limit of report.links[0]?.limits ?? []) rootLimits.set(limit.field, limit);
  const children = reports.map(([name, report]) =>
    node(name, report.links[1]?.id ?? "", report.links[1]?.limits ?? [], []),
  );
  return node("orchestrator", first[1].links[0]?.id ?? "", [...rootLimits.values()], children);
}

interface Gateway {
  readonly url: string;
  readonly audience: string;
  close(): Promise<void>;
}

/** The mock LLM gateway and tool server, behind the verifier middleware and the enforcer. */
async function startGateway(
  roots: ReturnType<typeof trustedRoots>,
  enforcer: Enforcer,
): Promise<Gateway> {
  let audience = "";
  let middleware: ReturnType<typeof allowanceMiddleware> | undefined;
  const server = createServer((req, res) => {
    (middleware as NonNullable<typeof middleware>)(req, res, (error?: unknown) => {
      if (error !== undefined) return reply(res, 500, { code: "INTERNAL", detail: String(error) });
      readJson(req).then(
        (body) =>
          handle(
            req.url ?? "/",
            (req as IncomingMessage & { allowance: AllowanceContext }).allowance.chain,
            body,
            enforcer,
            res,
          ),
        () => reply(res, 400, { code: "BAD_REQUEST", detail: "the body must be JSON" }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  audience = `http://127.0.0.1:${port}`;
  middleware = allowanceMiddleware({ roots, audience, replay: new MemoryReplayCache() });
  return {
    url: audience,
    audience,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(
  path: string,
  chain: VerifiedChain,
  body: Record<string, unknown>,
  enforcer: Enforcer,
  res: ServerResponse,
): Promise<void> {
  if (path.startsWith("/llm/")) {
    const provider = path.slice("/llm/".length);
    const model = String(body["model"] ?? "");
    const price = PRICES[model] ?? { input: 10_000_000, output: 30_000_000 };
    const input = Math.ceil(String(body["prompt"] ?? "").length / 4);
    const maxTokens = Number(body["max_tokens"] ?? 1000);
    const cost = (i: number, o: number) =>
      Math.ceil((i * price.input + o * price.output) / 1_000_000);
    const decision = await enforcer.reserve(
      {
        chain,
        provider,
        model,
        tokens: input + maxTokens,
        usdMicros: cost(input, maxTokens),
        acceptCaps: { minTokens: input + 100, minUsdMicros: cost(input, 100) },
      },
      { ttl: 30 },
    );
    if (decision.decision === "DENY") return deny(res, decision);
    // With caps, the gateway lowers max_tokens to what still fits on every link.
    const fits =
      decision.decision === "ALLOW_WITH_CAPS"
        ? Math.min(
            decision.amounts.tokens - input,
            Math.floor(
              (decision.amounts.usdMicros * 1_000_000 - input * price.input) / price.output,
            ),
          )
        : maxTokens;
    const output = Math.max(0, Math.min(maxTokens, fits));
    const usage = { tokens: input + output, usdMicros: cost(input, output) };
    await enforcer.commit(decision.reservationId, usage);
    return reply(res, 200, {
      decision: decision.decision,
      outcome:
        decision.decision === "ALLOW_WITH_CAPS"
          ? `answered with max_tokens lowered to ${output}`
          : `answered, ${input + output} tokens`,
      usage,
    });
  }
  if (path.startsWith("/tools/")) {
    const tool = path.slice("/tools/".length);
    // The tool runs with this body, so its arguments are what the grant's args judge.
    const decision = await enforcer.reserve(
      { chain, tool, arguments: body, usdMicros: 10_000 },
      { ttl: 30 },
    );
    if (decision.decision === "DENY") return deny(res, decision);
    await enforcer.commit(decision.reservationId, { usdMicros: 10_000 });
    return reply(res, 200, {
      decision: decision.decision,
      outcome: `${tool} done`,
      usage: { usdMicros: 10_000 },
    });
  }
  return reply(res, 404, { code: "NOT_FOUND", detail: path });
}

function deny(res: ServerResponse, decision: Extract<Decision, { decision: "DENY" }>): void {
  // What the grant does not allow is forbidden (403); a spent budget or a full window, 429.
  reply(res, decision.reason.endsWith("_NOT_ALLOWED") ? 403 : 429, {
    decision: `DENY:${decision.reason}`,
    // The enforcer's detail names the link already ("… not allowed by link 1"); say it once.
    outcome: /\blink \d+\b/.test(decision.detail)
      ? `denied: ${decision.detail}`
      : `denied by link ${decision.linkIndex}: ${decision.detail}`,
    reason: decision.reason,
    linkIndex: decision.linkIndex,
    ...(decision.retryAfter === undefined ? {} : { retryAfter: decision.retryAfter }),
  });
}

function reply(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    req.on("end", () => {
      try {
        resolve(text === "" ? {} : (JSON.parse(text) as Record<string, unknown>));
      } catch (error) {
        reject(error);
      }
    });
    req.on("error", reject);
  });
}

// ---- printing ----

export interface Style {
  readonly bold: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly green: (s: string) => string;
  readonly yellow: (s: string) => string;
  readonly red: (s: string) => string;
}

export function styleFor(colour: boolean): Style {
  const wrap = (code: number) => (s: string) => (colour ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { bold: wrap(1), dim: wrap(2), green: wrap(32), yellow: wrap(33), red: wrap(31) };
}

export function describeStep(step: DemoStep, style: Style): string {
  const text = step.decision.padEnd(25);
  const mark =
    step.decision === "ALLOW"
      ? style.green(text)
      : step.decision === "ALLOW_WITH_CAPS"
        ? style.yellow(text)
        : style.red(text);
  return `  ${step.agent.padEnd(10)} ${step.action.padEnd(38)} ${mark} ${style.dim(step.outcome)}`;
}

function amountText(field: string, value: number | null): string {
  if (value === null) return "∞";
  // The same money format as every other command (exact, no rounding): $0.785, $0.02, $10.
  return field.includes("usdMicros") ? formatUsd(value) : groupDigits(value);
}

export function describeTree(tree: DemoBudgetNode, style: Style): string {
  const lines: string[] = [];
  const walk = (node: DemoBudgetNode, prefix: string, last: boolean, top: boolean) => {
    const branch = top ? "" : last ? "└─ " : "├─ ";
    lines.push(
      `${prefix}${branch}${style.bold(node.name)} ${style.dim(node.linkId.slice(0, 10) + "…")}`,
    );
    const inner = top ? "" : prefix + (last ? "   " : "│  ");
    for (const limit of node.limits) {
      const name = limit.field.replace("usdMicros", "usd");
      const pct =
        limit.cap === null || limit.cap === 0 ? 0 : (limit.spent + limit.held) / limit.cap;
      const colour = pct >= 1 ? style.red : pct >= 0.8 ? style.yellow : style.green;
      const left =
        limit.cap === null
          ? style.dim("no cap".padStart(9))
          : colour(amountText(limit.field, limit.remaining).padStart(9));
      const of = limit.cap === null ? "" : ` of ${amountText(limit.field, limit.cap)}`;
      lines.push(
        `${inner}${node.children.length > 0 ? "│  " : "   "}${name.padEnd(28)} spent ${amountText(limit.field, limit.spent).padStart(9)}  held ${amountText(limit.field, limit.held).padStart(7)}  left ${left}${of}`,
      );
    }
    node.children.forEach((child, i) => walk(child, inner, i === node.children.length - 1, false));
  };
  walk(tree, "", true, true);
  return lines.join("\n");
}

export function describeDemo(result: DemoResult, style: Style = styleFor(false)): string {
  return [
    style.bold("Allowance demo: a root, an orchestrator and three sub-agents"),
    style.dim(
      "Simulated: the model and the tools (a mock LLM gateway and tool server on 127.0.0.1, fixed prices).",
    ),
    style.dim(
      "Real: the keys, tokens and signatures, verification, the ledger and the enforcement in front of every call.",
    ),
    "",
    ...result.steps.map((s) => describeStep(s, style)),
    "",
    style.bold("Budgets per link (spent / held / left):"),
    describeTree(result.tree, style),
    "",
    style.bold("Try it with your own keys:"),
    "  allowance keygen --out root.jwk && allowance keygen --out agent.jwk",
    "  allowance mint --key root.jwk --to agent.pub.jwk --usd 5 --tokens 100k --expires 1h > agent.token",
    "  allowance verify @agent.token --roots root.pub.jwk",
  ].join("\n");
}
