/**
 * `allowance demo`: the delegation story on the embedded default, no keys or servers needed.
 * A root mints a grant for an orchestrator, the orchestrator narrows it for a sub-agent, the
 * sub-agent narrows it again, and a tool endpoint verifies the chain offline.
 */
import {
  attenuate,
  encodeToken,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type EffectiveGrant,
} from "@allowance/core";
import { AllowanceError, verify } from "@allowance/verifier";

export interface DemoResult {
  readonly token: string;
  readonly tokenBytes: number;
  readonly linkIds: readonly string[];
  readonly grant: EffectiveGrant;
  readonly refused: { readonly code: string; readonly fields: readonly string[] };
}

const USD = 1_000_000;

export async function runDemo(now: number = Math.floor(Date.now() / 1000)): Promise<DemoResult> {
  const root = await generateKeyPair();
  const orchestrator = await generateKeyPair();
  const researcher = await generateKeyPair();
  const tool = await generateKeyPair();

  const rootToken = mint({
    rootKey: root,
    holder: publicKeyOf(orchestrator),
    grant: {
      exp: now + 24 * 3600,
      depth: 3,
      usdMicros: 50 * USD,
      tokens: 1_000_000,
      providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 20 * USD }],
      tools: ["search.*", "email.send"],
      risk: 100,
      label: "run-42",
    },
  });
  const researcherToken = attenuate(rootToken, {
    holderKey: orchestrator,
    holder: publicKeyOf(researcher),
    grant: { usdMicros: 2 * USD, providers: [{ name: "anthropic" }], tools: ["search.*"], label: "run-42/researcher" },
  });
  const toolToken = attenuate(researcherToken, {
    holderKey: researcher,
    holder: publicKeyOf(tool),
    grant: { usdMicros: 500_000, tools: ["search.web"], exp: now + 3600 },
  });

  let refused: DemoResult["refused"] = { code: "none", fields: [] };
  try {
    attenuate(toolToken, { holderKey: tool, holder: publicKeyOf(orchestrator), grant: { usdMicros: 10 * USD, tools: ["*"] } });
  } catch (error) {
    if (!(error instanceof AllowanceError)) throw error;
    refused = { code: error.code, fields: error.violations.map((v) => v.field) };
  }

  const chain = verify(toolToken, { roots: trustedRoots([root]), now });
  return {
    token: formatToken(toolToken),
    tokenBytes: encodeToken(toolToken).length,
    linkIds: chain.linkIds,
    grant: chain.grant,
    refused,
  };
}

export function describeDemo(result: DemoResult): string {
  const g = result.grant;
  const usd = (micros: number | undefined) => (micros === undefined ? "unlimited" : `$${(micros / USD).toFixed(2)}`);
  return [
    "root → orchestrator: $50, 1M tokens, openai + anthropic ($20), tools search.* and email.send, depth 3",
    "orchestrator → researcher: $2, anthropic only, search.*",
    "researcher → tool call: $0.50, search.web, expires in 1 h",
    `a wider grant for a sub-agent was refused: ${result.refused.code} (${result.refused.fields.join(", ")})`,
    "",
    `verified offline: ${result.linkIds.length} links, ${result.tokenBytes} bytes (${result.token.length} characters)`,
    "effective grant of the leaf:",
    `  usd        ${usd(g.usdMicros)}`,
    `  tokens     ${g.tokens ?? "unlimited"}`,
    `  providers  ${g.providers?.map((p) => (p.usdMicros === undefined ? p.name : `${p.name} (${usd(p.usdMicros)})`)).join(", ") ?? "any"}`,
    `  tools      ${g.tools?.join(", ") ?? "any"}`,
    `  risk       ${g.risk ?? "unlimited"}`,
    `  depth      ${g.depth ?? "unlimited"}`,
    `  expires    ${new Date(g.exp * 1000).toISOString()}`,
    `  label      ${g.label ?? ""}`,
    "link ids:",
    ...result.linkIds.map((id, i) => `  ${i}  ${id}`),
  ].join("\n");
}
