import { AllowanceError, formatToken, linkIds, mint } from "@allowance/core";
import { toBase64url } from "@allowance/core/format";
import type { Command } from "commander";
import { errorDetails } from "../describe.js";
import { UsageError } from "../errors.js";
import { addGrantOptions, grantInputOf } from "../grant-options.js";
import { readPrivateKey, readPublicKey } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { FLAG, parseGrantInput, type GrantInput } from "../grant-input.js";
import { FAR_TIMES_PARSED } from "../units.js";
import { libraryCall } from "./shared.js";

type MintCommandOptions = GrantInput & { key: string; to: string; json?: boolean };

export function registerMint(program: Command): void {
  const command = program
    .command("mint")
    .description("Sign a root grant for a holder (human units in, exact integers in the token)")
    .requiredOption("--key <file>", "the root's private JWK")
    .requiredOption("--to <file>", "the holder's public JWK")
    .requiredOption(
      "--expires <time>",
      "expiry: a duration from now (24h, 7d), an ISO date, or epoch seconds",
    );
  addGrantOptions(command)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance mint --key root.jwk --to orchestrator.pub.jwk --tokens 1M --usd 50 \\",
        "  --providers openai,anthropic:usd=20 --tools 'search.*' --risk 100 --depth 3 --expires 24h \\",
        "  --rate 100k-tokens/1h --label run-42 > orchestrator.token",
      ),
    )
    .action(async (options: MintCommandOptions) => {
      const now = Math.floor(Date.now() / 1000);
      const grant = parseGrantInput(grantInputOf(options), now);
      const rootKey = await readPrivateKey(options.key, "--key");
      const holder = await readPublicKey(options.to, "--to");
      const token = libraryCall(() =>
        grantSizeChecked(() => mint({ rootKey, holder, grant, allowFarFuture: FAR_TIMES_PARSED })),
      );
      const text = formatToken(token);
      const ids = linkIds(token);
      emit(
        options,
        {
          token: text,
          rootKid: toBase64url(token.rootKid),
          holderKid: holder.kid,
          linkIds: ids,
          linkId: ids.at(-1),
          grant,
        },
        () => text,
      );
    });
}

/**
 * A grant the format cannot hold (ERR_LIMIT: a --label of 300 bytes, 65 tools) is input too large,
 * a usage error (exit 2) as README.md puts malformed input, not a refusal of something well formed.
 * Its code and details stay. `fieldOnly`: only errors about a field of the grant given (attenuate,
 * where a parent token with the most links there can be is refused as before, exit 1).
 */
export function grantSizeChecked<T>(call: () => T, fieldOnly = false): T {
  try {
    return call();
  } catch (error) {
    if (!(error instanceof AllowanceError) || error.code !== "ERR_LIMIT") throw error;
    if (fieldOnly && error.field === undefined) throw error;
    const what =
      error.field === undefined
        ? "the grant is too large"
        : `${FLAG[error.field as keyof GrantInput] ?? error.field} is too large`;
    throw new UsageError(`${what} (ERR_LIMIT): ${error.message}`, errorDetails(error), error.code);
  }
}
