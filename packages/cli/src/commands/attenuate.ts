import { attenuate, formatToken, linkIds } from "@allowance/core";
import type { Command } from "commander";
import { addGrantOptions, grantInputOf } from "../grant-options.js";
import { readPrivateKey, readPublicKey, readToken } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { parseGrantInput, type GrantInput } from "../grant-input.js";
import { grantSizeChecked } from "./mint.js";
import { FAR_TIMES_PARSED } from "../units.js";
import { libraryCall } from "./shared.js";

type AttenuateCommandOptions = GrantInput & {
  token: string;
  key: string;
  to: string;
  json?: boolean;
};

export function registerAttenuate(program: Command): void {
  const command = program
    .command("attenuate")
    .description("Delegate a strictly narrower grant to a new holder by appending one signed link")
    .requiredOption("--token <token>", "the parent token: the token itself, @file, or - for stdin")
    .requiredOption(
      "--key <file>",
      "the current holder's private JWK (the holder named by the token's last link)",
    )
    .requiredOption("--to <file>", "the new holder's public JWK")
    .option(
      "--expires <time>",
      "an earlier expiry: a duration from now (1h), an ISO date, or epoch seconds",
    );
  addGrantOptions(command)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance attenuate --token @orchestrator.token --key orchestrator.jwk --to researcher.pub.jwk \\",
        "  --usd 2 --tools 'search.*' --expires 1h --label researcher > researcher.token",
      ),
    )
    .action(async (options: AttenuateCommandOptions) => {
      const now = Math.floor(Date.now() / 1000);
      const grant = parseGrantInput(grantInputOf(options), now);
      const { token } = readToken(options.token, "--token");
      const holderKey = await readPrivateKey(options.key, "--key");
      const holder = await readPublicKey(options.to, "--to");
      const child = libraryCall(() =>
        grantSizeChecked(
          () => attenuate(token, { holderKey, holder, grant, allowFarFuture: FAR_TIMES_PARSED }),
          true,
        ),
      );
      const text = formatToken(child);
      const ids = linkIds(child);
      emit(
        options,
        { token: text, holderKid: holder.kid, linkIds: ids, linkId: ids.at(-1), grant },
        () => text,
      );
    });
}
