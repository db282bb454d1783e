import { tokenHash } from "@allowance/core";
import { equalBytes, toBase64url } from "@allowance/core/format";
import { AUTH_SCHEME, present } from "@allowance/verifier";
import type { Command } from "commander";
import { RejectedError } from "../errors.js";
import { readGrants, readPrivateKey, readToken } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { libraryCall } from "./shared.js";

interface PresentCommandOptions {
  readonly key: string;
  readonly aud: string;
  readonly method?: string;
  readonly path?: string;
  readonly json?: boolean;
}

export function registerPresent(program: Command): void {
  program
    .command("present")
    .description(
      "Sign a one-time proof of possession for an endpoint: the Authorization header value",
    )
    .argument("<token>", "the token itself, @file, or - for stdin")
    .requiredOption(
      "--key <file>",
      "the holder's private JWK (the holder named by the token's last link)",
    )
    .requiredOption("--aud <endpoint>", "the endpoint the presentation is for")
    .option("--method <method>", "bind the HTTP method (GET, POST, …)")
    .option("--path <path>", "bind the HTTP path, without query")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        'curl -H "Authorization: $(allowance present @researcher.token --key researcher.jwk \\',
        '  --aud https://tools.example/search --method POST --path /search)" https://tools.example/search',
      ),
    )
    .action(async (argument: string, options: PresentCommandOptions) => {
      const { token } = readToken(argument);
      const holderKey = await readPrivateKey(options.key, "--key");
      const grants = readGrants(token);
      // A presentation signed by another key would be refused by every verifier: say so here.
      const leaf = grants.at(-1);
      if (leaf === undefined || !equalBytes(leaf.sub, holderKey.publicKey)) {
        throw new RejectedError(
          `refused (ERR_KEY): --key ${options.key} is not the holder of this token; present with the private key the token was issued to`,
          // As every other error's details: top-level fields beside ok, code and message.
          { linkIndex: grants.length - 1 },
          "ERR_KEY",
        );
      }
      const presentation = libraryCall(() =>
        present(token, holderKey, {
          aud: options.aud,
          ...(options.method === undefined ? {} : { method: options.method }),
          ...(options.path === undefined ? {} : { path: options.path }),
        }),
      );
      const header = `${AUTH_SCHEME} ${presentation}`;
      emit(
        options,
        {
          header,
          presentation,
          aud: options.aud,
          ...(options.method === undefined ? {} : { method: options.method.toUpperCase() }),
          ...(options.path === undefined ? {} : { path: options.path }),
          tokenHash: toBase64url(tokenHash(token)),
        },
        () => header,
      );
    });
}
