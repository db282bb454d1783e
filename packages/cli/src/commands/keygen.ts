import { closeSync, existsSync, fchmodSync, openSync, writeSync } from "node:fs";
import { exportPrivateJwk, exportPublicJwk, generateKeyPair } from "@allowance/core";
import type { Command } from "commander";
import { UsageError } from "../errors.js";
import { emit, exampleHelp } from "../output.js";

interface KeygenOptions {
  readonly out: string;
  readonly force?: boolean;
  readonly json?: boolean;
}

/** `root.jwk` → `root.pub.jwk`; any other name gets `.pub.jwk` appended. */
export function publicPathFor(out: string): string {
  return `${out.endsWith(".jwk") ? out.slice(0, -4) : out}.pub.jwk`;
}

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("Generate an Ed25519 key pair: a private JWK (mode 0600) and its public JWK")
    .option(
      "--out <file>",
      "where to write the private JWK; the public one goes to <name>.pub.jwk",
      "key.jwk",
    )
    .option("--force", "overwrite existing key files")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp("allowance keygen --out root.jwk      # writes root.jwk (0600) and root.pub.jwk"),
    )
    .action(async (options: KeygenOptions) => {
      const publicPath = publicPathFor(options.out);
      for (const path of [options.out, publicPath]) {
        if (options.force !== true && existsSync(path))
          throw new UsageError(
            `${path} already exists; choose another --out or pass --force to overwrite it`,
          );
      }
      const keyPair = await generateKeyPair();
      const publicJwk = exportPublicJwk(keyPair);
      // The private key never exists on disk with wider permissions than 0600, not even briefly.
      writeFile(
        options.out,
        JSON.stringify(exportPrivateJwk(keyPair), null, 2) + "\n",
        0o600,
        options.force === true,
      );
      writeFile(
        publicPath,
        JSON.stringify(publicJwk, null, 2) + "\n",
        0o644,
        options.force === true,
      );
      emit(
        options,
        { kid: keyPair.kid, publicJwk, privateKeyFile: options.out, publicKeyFile: publicPath },
        () =>
          [
            `kid ${keyPair.kid}`,
            JSON.stringify(publicJwk, null, 2),
            `wrote ${options.out} (private, mode 0600) and ${publicPath} (public)`,
          ].join("\n"),
      );
    });
}

function writeFile(path: string, text: string, mode: number, force: boolean): void {
  let fd: number;
  try {
    fd = openSync(path, force ? "w" : "wx", mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST")
      throw new UsageError(
        `${path} already exists; choose another --out or pass --force to overwrite it`,
      );
    throw new UsageError(
      `cannot write ${path}: ${code === "ENOENT" ? "no such directory" : code === "EACCES" ? "permission denied" : (error as Error).message}`,
    );
  }
  try {
    // `mode` applies only when the file is created; an overwritten file gets it here.
    fchmodSync(fd, mode);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
