/**
 * Reading what the user points at — tokens, JWK files, JWKS, JSON — and turning every failure into
 * one line that says what to do. Nothing here decides anything about a grant.
 */
import { readFileSync } from "node:fs";
import {
  AllowanceError,
  importJwks,
  importPrivateJwk,
  importPublicJwk,
  parseToken,
  readUnverifiedGrants,
  trustedRoots,
  type KeyPair,
  type LinkGrant,
  type PublicKey,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { TOKEN_PREFIX } from "@allowance/core/format";
import { errorDetails } from "./describe.js";
import { UsageError } from "./errors.js";

/** Reads a whole file as UTF-8, naming the flag and the fix when it cannot. */
export function readText(path: string, what: string): string {
  return readBytes(path, what).toString("utf8");
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads a whole file as UTF-8 text that is checked, as a body whose arguments are checked is read
 * (spec/arguments.md §6.4): bytes that are not UTF-8 are refused, not replaced by U+FFFD (a name
 * would change, and with it what it is checked or priced as), and a byte order mark is kept, so that
 * the strict JSON reader refuses it.
 */
export function readStrictUtf8(path: string, what: string): string {
  const bytes = readBytes(path, what);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new UsageError(`${what} ${path} is not UTF-8`);
  }
}

/** Reads a whole file (`-`: standard input) as bytes, naming the flag and the fix when it cannot. */
function readBytes(path: string, what: string): Buffer {
  try {
    return path === "-" ? readFileSync(0) : readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "it is a directory"
          : code === "EACCES"
            ? "permission denied"
            : (error as Error).message;
    throw new UsageError(`cannot read ${what} ${path}: ${why}`);
  }
}

export function readJson(path: string, what: string): unknown {
  const text = readText(path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${what} ${path} is not valid JSON`);
  }
}

/** The text of a token argument: the token itself, `@file`, or `-` for standard input. */
export function readTokenText(argument: string, what = "token"): string {
  const text =
    argument === "-"
      ? readText("-", `${what} from`)
      : argument.startsWith("@")
        ? readText(argument.slice(1), `${what} file`)
        : argument;
  return text.trim();
}

/**
 * Parses a token argument's structure (no signature is checked). A bad token is a usage error that
 * keeps what the library's error names (linkIndex, field, limit, actual) for `--json`.
 */
export function readToken(argument: string, what = "token"): { text: string; token: Token } {
  const text = readTokenText(argument, what);
  if (!text.startsWith(TOKEN_PREFIX)) {
    throw new UsageError(
      `${what} is not an Allowance token (it should start with ${TOKEN_PREFIX}); pass the token, @file or - for stdin`,
    );
  }
  try {
    return { text, token: parseToken(text) };
  } catch (error) {
    if (error instanceof AllowanceError)
      throw new UsageError(
        `${what} is malformed (${error.code}: ${error.message}); pass the token exactly as minted`,
        errorDetails(error),
        error.code,
      );
    throw error;
  }
}

/** Decodes every link's grant WITHOUT checking signatures (for display); a bad payload is a usage error. */
export function readGrants(token: Token): LinkGrant[] {
  try {
    return readUnverifiedGrants(token);
  } catch (error) {
    if (error instanceof AllowanceError)
      throw new UsageError(
        `token is malformed (${error.code} at link ${error.linkIndex ?? "?"}: ${error.message})`,
        errorDetails(error),
        error.code,
      );
    throw error;
  }
}

export async function readPrivateKey(path: string, what = "--key"): Promise<KeyPair> {
  const jwk = readJson(path, `${what} file`);
  try {
    return await importPrivateJwk(jwk);
  } catch (error) {
    throw new UsageError(
      `${what} file ${path} is not an Ed25519 private JWK (${messageOf(error)}); use a key file written by 'allowance keygen'`,
    );
  }
}

export async function readPublicKey(path: string, what = "--to"): Promise<PublicKey> {
  const jwk = readJson(path, `${what} file`);
  try {
    return await importPublicJwk(jwk);
  } catch (error) {
    throw new UsageError(
      `${what} file ${path} is not an Ed25519 public JWK (${messageOf(error)}); use a .pub.jwk file written by 'allowance keygen'`,
    );
  }
}

/** Trusted roots: a JWKS `{"keys": [...]}`, or a single public JWK such as `root.pub.jwk`. */
export async function readRoots(path: string, what = "--roots"): Promise<TrustedRoots> {
  const json = readJson(path, `${what} file`);
  let roots: TrustedRoots;
  try {
    roots =
      typeof json === "object" && json !== null && "keys" in json
        ? await importJwks(json)
        : trustedRoots([await importPublicJwk(json)]);
  } catch (error) {
    throw new UsageError(
      `${what} file ${path} is not a JWKS or public JWK of Ed25519 keys (${messageOf(error)})`,
    );
  }
  if (roots.size === 0)
    throw new UsageError(
      `${what} file ${path} has no Ed25519 keys; list the root's public JWK in it`,
    );
  return roots;
}

export function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error))
    .replace(/\s+/g, " ")
    .trim()
    .replace(/\.$/, "");
}
