import { FileRevocationStore } from "@allowance/verifier/file";
import type { Command } from "commander";
import { UsageError } from "../errors.js";
import { messageOf } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { LINK_ID } from "./table.js";

interface RevokeCommandOptions {
  readonly store: string;
  readonly json?: boolean;
}

export function registerRevoke(program: Command): void {
  program
    .command("revoke")
    .description("Revoke a link id (and so every token below it) in a revocation file")
    .argument("<link-id>", "the link id, as 'allowance inspect' or 'allowance verify' prints it")
    .requiredOption("--store <file>", "the revocation list (JSON); created if missing")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance revoke 3kq0m1l8F4-Wz7m0b3aE5nS9m0Q2xv8y7mWcTqzkD1A --store revoked.json",
      ),
    )
    .action((linkId: string, options: RevokeCommandOptions) => {
      if (!LINK_ID.test(linkId))
        throw new UsageError(
          `${JSON.stringify(linkId)} is not a link id (43 base64url characters); copy it from 'allowance inspect'`,
        );
      const store = new FileRevocationStore(options.store);
      if (store.lastError !== undefined)
        throw new UsageError(
          `--store file ${options.store} is not a revocation list (${messageOf(store.lastError)}); fix or move it`,
        );
      const already = store.has(linkId);
      try {
        store.revoke(linkId);
      } catch (error) {
        throw new UsageError(`cannot write --store file ${options.store}: ${messageOf(error)}`);
      }
      const count = store.list().length;
      emit(
        options,
        { revoked: linkId, already, store: options.store, count },
        () =>
          `${already ? "already revoked" : "revoked"} ${linkId} (${options.store} lists ${count} link id${count === 1 ? "" : "s"})`,
      );
    });
}
