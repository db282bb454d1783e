import { createRequire } from "node:module";
import { equalBytes } from "@allowance/core/format";
import type { Command } from "commander";
import { RejectedError, UsageError } from "../errors.js";
import { readPrivateKey } from "../io.js";
import { exampleHelp } from "../output.js";
import { LEDGER_FORMS, POLICY_HELP, requireLedger } from "./shared.js";
import { openRevocations, verifyArgument } from "./verify.js";

interface McpCommandOptions {
  readonly token: string;
  readonly key: string;
  readonly roots: string;
  readonly ledger?: string;
  readonly policy?: string;
  readonly aud?: string;
  readonly revocations?: string;
}

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

export function registerMcp(program: Command): void {
  program
    .command("mcp")
    .description(
      "Serve the holder's budget to an MCP client over stdio: get_budget, list_limits, check_action, delegate",
    )
    .requiredOption("--token <token>", "the agent's token: the token itself or @file")
    .requiredOption(
      "--key <file>",
      "the agent's private JWK (the token's holder), used by delegate",
    )
    .requiredOption("--roots <file>", "trusted root keys: a JWKS, or one public JWK")
    .option(
      "--ledger <ledger>",
      `the ledger the agent's enforcer writes to (required): ${LEDGER_FORMS}`,
    )
    .option("--policy <file>", POLICY_HELP)
    .option("--aud <endpoint>", "verify the token for this audience")
    .option(
      "--revocations <file>",
      "a revocation list written by 'allowance revoke': a revoked token is refused at start and on every call",
    )
    .addHelpText(
      "after",
      exampleHelp(
        "allowance mcp --token @agent.token --key agent.jwk --roots root.pub.jwk --ledger sqlite:ledger.db",
        '# in an MCP client config: {"command": "allowance", "args": ["mcp", "--token", "@agent.token", …]}',
      ),
    )
    .action(async (options: McpCommandOptions) => {
      const ledgerSpec = requireLedger(options.ledger, "mcp", "serves");
      if (options.token === "-")
        throw new UsageError(
          "--token - is not possible here: standard input carries the MCP protocol; pass the token or @file",
        );
      const { chain, text } = await verifyArgument(options.token, options, "--token");
      const holderKey = await readPrivateKey(options.key, "--key");
      if (!equalBytes(holderKey.publicKey, chain.holder)) {
        throw new RejectedError(
          `refused (ERR_KEY): --key ${options.key} is not the holder of this token; pass the private key the token was issued to`,
        );
      }
      // The SDK, the enforcer and the ledgers load only for this command.
      const [{ readPolicy }, { StdioServerTransport }, { openLedger }, { createMcpServer }] =
        await Promise.all([
          import("../policy.js"),
          import("@modelcontextprotocol/sdk/server/stdio.js"),
          import("../ledger-spec.js"),
          import("../mcp.js"),
        ]);
      const policy = readPolicy(options.policy);
      const opened = await openLedger(ledgerSpec);
      // Read again on every call (the store reloads the file when it changes): a revocation made
      // while the server runs takes effect without a restart.
      const revocations =
        options.revocations === undefined ? undefined : openRevocations(options.revocations);
      const server = createMcpServer({
        chain,
        token: text,
        holderKey,
        ledger: opened.ledger,
        ledgerSource: { kind: opened.kind, where: opened.where },
        policy,
        version,
        ...(revocations === undefined ? {} : { revocations }),
      });
      const transport = new StdioServerTransport();
      const closed = new Promise<void>((resolve) => {
        transport.onclose = resolve;
        process.stdin.once("end", resolve);
      });
      await server.connect(transport);
      await closed;
      await server.close();
      await opened.close();
    });
}
