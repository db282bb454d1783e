/**
 * An orchestrator hands two sub-agents narrower grants and runs them with the OpenAI Agents SDK:
 *
 *   root key ──mint──▶ orchestrator  $1.00, search_web + send_email, tools.example only
 *                        ├─attenuate─▶ researcher  $0.50, search_web
 *                        └─attenuate─▶ mailer      $0.20, send_email to @example.com only
 *
 * Everything runs on 127.0.0.1: a mock provider stands in for OpenAI (mock-provider.ts) and a tool
 * server verifies a presentation on every call (tool-server.ts). Run it from the repository root:
 *
 *   npm run -s example
 *
 * The output is the same on every run: keys and link ids are fresh, but nothing printed depends
 * on them.
 */
import { pathToFileURL } from "node:url";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type EffectiveGrant,
  type GrantFields,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { Enforcer, MemoryLedger, type RemainingReport } from "@allowance/enforcer";
import { formatUsdMicros } from "@allowance/meter";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { startMockProvider } from "./mock-provider.js";
import { runSubAgent, type Action } from "./sub-agent.js";
import { TOOLS_AUDIENCE, startToolServer, type ToolRequest } from "./tool-server.js";

const MODEL = "gpt-4.1-mini";

/** What one run did, for the printed report and for the test. */
export interface ExampleReport {
  readonly agents: readonly {
    readonly name: string;
    readonly api: string;
    readonly output: string;
    /** What the sub-agent's token allows: the grant in force at its link. */
    readonly grant: EffectiveGrant;
    readonly remaining: RemainingReport;
  }[];
  readonly actions: readonly Action[];
  /** Every request the mock provider answered, by API path. */
  readonly modelCalls: readonly string[];
  /** Every request the tool server received, verified or refused. */
  readonly toolRequests: readonly ToolRequest[];
  readonly outbox: readonly { readonly to: string; readonly subject: string }[];
}

/** A token and the key of its holder. */
export interface Holder {
  readonly key: KeyPair;
  readonly token: Token;
}

/**
 * The orchestrator's grant, minted by the root key, and the two it hands on: each a narrower
 * link the orchestrator signs offline.
 */
export async function issueGrants(rootKey: KeyPair): Promise<{
  readonly orchestrator: Holder;
  readonly researcher: Holder;
  readonly mailer: Holder;
}> {
  const orchestratorKey = await generateKeyPair();
  const root = mint({
    rootKey,
    holder: publicKeyOf(orchestratorKey),
    grant: {
      exp: Math.floor(Date.now() / 1000) + 3600,
      usdMicros: 1_000_000,
      providers: [{ name: "openai" }],
      models: [MODEL],
      tools: ["search_web", "send_email"],
      aud: [TOOLS_AUDIENCE],
      depth: 1,
      label: "orchestrator",
    },
  });
  const delegate = async (grant: GrantFields): Promise<Holder> => {
    const key = await generateKeyPair();
    const token = attenuate(root, { holderKey: orchestratorKey, holder: publicKeyOf(key), grant });
    return { key, token };
  };
  return {
    orchestrator: { key: orchestratorKey, token: root },
    researcher: await delegate({
      usdMicros: 500_000,
      tools: ["search_web"],
      depth: 0,
      label: "researcher",
    }),
    mailer: await delegate({
      usdMicros: 200_000,
      tools: ["send_email"],
      // Mail to example.com only, and no argument but these three (spec/arguments.md).
      args: [
        {
          tool: "send_email",
          constraints: [
            { name: "to", kind: "emailDomain", domains: ["example.com"] },
            { name: "subject", kind: "maxLength", max: 200 },
            { name: "body", kind: "maxLength", max: 4000 },
          ],
        },
      ],
      depth: 0,
      label: "mailer",
    }),
  };
}

export async function runExample(): Promise<ExampleReport> {
  // The root authority's key: the tool server trusts its public half and nothing else.
  const rootKey = await generateKeyPair();
  const roots = trustedRoots([publicKeyOf(rootKey)]);
  const provider = await startMockProvider();
  const tools = await startToolServer(roots);
  try {
    const { researcher, mailer } = await issueGrants(rootKey);

    // One ledger holds every link's account, so both sub-agents draw on the orchestrator's $1.00
    // as well as on their own caps. (Across processes: SqliteLedger on one host, RedisLedger.)
    const ledger = new MemoryLedger();
    const actions: Action[] = [];
    const run = async (
      name: string,
      holder: Holder,
      useResponses: boolean,
      toolNames: readonly ("search_web" | "send_email")[],
      request: string,
    ) => {
      // The sub-agent checks what it was given before it relies on it.
      const chain: VerifiedChain = verify(holder.token, { roots, audience: TOOLS_AUDIENCE });
      const enforcer = new Enforcer({ ledger });
      const output = await runSubAgent(
        {
          name,
          instructions: "Use your tools, then answer briefly.",
          chain,
          key: holder.key,
          enforcer,
          model: MODEL,
          baseURL: provider.baseURL,
          useResponses,
          toolServer: tools.url,
          actions,
        },
        toolNames,
        request,
      );
      return {
        name,
        chain,
        enforcer,
        output,
        api: useResponses ? "Responses" : "Chat Completions",
      };
    };

    const research = await run(
      "researcher",
      researcher,
      true,
      ["search_web"],
      "What changed in MCP authorization?",
    );
    const mail = await run(
      "mailer",
      mailer,
      false,
      ["send_email"],
      `alice@example.com, eve@evil.test\nResearch notes: MCP authorization\n${research.output}`,
    );

    const agents = [];
    for (const { name, api, output, chain, enforcer } of [research, mail])
      agents.push({
        name,
        api,
        output,
        grant: chain.grant,
        remaining: await enforcer.remaining(chain),
      });
    return {
      agents,
      actions,
      modelCalls: [...provider.calls],
      toolRequests: [...tools.requests],
      outbox: [...tools.outbox],
    };
  } finally {
    await Promise.all([provider.close(), tools.close()]);
  }
}

/** The report as printed: actions, outcomes, calls and spend per link. */
export function renderReport(report: ExampleReport): string {
  const lines: string[] = [];
  for (const agent of report.agents) {
    const calls = report.actions.filter((a) => a.agent === agent.name);
    lines.push(`${agent.name} (${agent.api} API)`, `  grant: ${describe(agent.grant)}`);
    for (const action of calls) {
      const args = JSON.stringify(action.arguments.to ?? action.arguments.query);
      const outcome =
        action.outcome === "allowed"
          ? "allowed"
          : `denied by the ${action.deniedBy ?? "?"} (${action.reason ?? "?"})`;
      lines.push(`  ${action.tool} ${args}: ${outcome}`);
    }
    lines.push(`  answer: ${agent.output.replaceAll("\n", "\n          ")}`);
  }
  const verified = report.toolRequests.filter((r) => r.holder !== undefined).length;
  lines.push(
    "",
    `model calls: ${report.modelCalls.length}, each metered under the caller's grant`,
    `tool server: ${report.toolRequests.length} requests, ${verified} with a verified presentation`,
    `mail sent: ${report.outbox.map((m) => m.to).join(", ") || "none"}`,
    "",
    "spend per link (spent / cap, left)",
  );
  const seen = new Set<string>();
  for (const agent of report.agents) {
    for (const link of agent.remaining.links) {
      const usd = link.limits.find((l) => l.field === "usdMicros");
      if (usd === undefined || usd.cap === null) continue;
      // The root link is shared: printed once, after both agents ran.
      const key = `${link.index}:${link.label ?? ""}`;
      if (seen.has(key)) continue;
      seen.add(key);
      lines.push(
        `  link ${link.index} ${(link.label ?? "").padEnd(12)} ${formatUsdMicros(usd.spent)} / ${formatUsdMicros(usd.cap)}, ${formatUsdMicros(usd.remaining ?? 0)} left`,
      );
    }
  }
  return lines.join("\n");
}

/** A grant in a line: its tools, argument constraints and dollar cap. */
function describe(grant: EffectiveGrant): string {
  const constraints = (grant.args ?? []).flatMap((entry) =>
    entry.constraints.map((c) =>
      c.kind === "emailDomain"
        ? `${c.name} @${c.domains.join(", @")} only`
        : c.kind === "maxLength"
          ? `${c.name} ≤ ${c.max} bytes`
          : `${c.name} ${c.kind}`,
    ),
  );
  const tools = [(grant.tools ?? ["any tool"]).join(", "), ...constraints].join("; ");
  return `${tools}; ${formatUsdMicros(grant.usdMicros ?? 0)}`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(renderReport(await runExample()));
}
