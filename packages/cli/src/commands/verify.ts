import { existsSync } from "node:fs";
import { AllowanceError, effectiveToJSON, kidOf } from "@allowance/core";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { FileRevocationStore } from "@allowance/verifier/file";
import type { Command } from "commander";
import { describeGrant, quoted, unrestricted } from "../describe.js";
import { RejectedError, UsageError } from "../errors.js";
import { messageOf, readRoots, readToken } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { parseDuration, parseInstant } from "../units.js";
import { rejection } from "./shared.js";

interface VerifyCommandOptions {
  readonly roots: string;
  readonly aud?: string;
  readonly at?: string;
  readonly revocations?: string;
  readonly skew?: string;
  readonly json?: boolean;
}

/**
 * The CLI's clock allowance: none unless --skew gives one. A person asking "is this token valid?"
 * means now, on this clock; servers keep the library's allowance for clocks that disagree
 * (DEFAULT_SKEW_SECONDS, 60 s).
 */
export const CLI_SKEW_SECONDS = 0;

/** `--skew 30s` → 30; "0" is no allowance. At most the verifier's maximum (1 h). */
export function parseSkew(text: string | undefined): number {
  if (text === undefined) return CLI_SKEW_SECONDS;
  if (/^0+[smhd]?$/.test(text.trim())) return 0;
  const seconds = parseDuration(text, "--skew");
  if (seconds > 3600) throw new UsageError(`--skew: at most 1h, got ${JSON.stringify(text)}`);
  return seconds;
}

/** Opens a revocation file for reading; a named file that is missing or invalid is a usage error. */
export function openRevocations(path: string): FileRevocationStore {
  if (!existsSync(path))
    throw new UsageError(
      `cannot read --revocations file ${path}: no such file; create it with 'allowance revoke <link-id> --store ${path}'`,
    );
  const store = new FileRevocationStore(path);
  if (store.lastError !== undefined)
    throw new UsageError(
      `--revocations file ${path} is not a revocation list (${messageOf(store.lastError)})`,
    );
  return store;
}

/**
 * A verified chain as `verify --json` and the MCP tool `list_limits` both give it: its keys and
 * links, the effective grant in words (`limits`) and in exact integers (`grant`), and the budget
 * fields no link restricts.
 */
export function chainResult(chain: VerifiedChain, holderKid: string, nowSeconds: number) {
  return {
    ok: true as const,
    rootKid: chain.rootKid,
    holderKid,
    linkIds: chain.linkIds,
    limits: describeGrant(chain.grant, nowSeconds),
    unrestricted: unrestricted(chain.grant),
    grant: effectiveToJSON(chain.grant),
  };
}

/** Verifies a token argument against a roots file; an invalid token is a rejection (exit 1). */
export async function verifyArgument(
  argument: string,
  options: { roots: string; aud?: string; at?: string; revocations?: string; skew?: string },
  what = "token",
): Promise<{ chain: VerifiedChain; now: number; text: string }> {
  const { token, text } = readToken(argument, what);
  const roots = await readRoots(options.roots);
  const wallClock = Math.floor(Date.now() / 1000);
  const now = options.at === undefined ? wallClock : parseInstant(options.at, wallClock, "--at");
  const revocations =
    options.revocations === undefined ? undefined : openRevocations(options.revocations);
  const skew = parseSkew(options.skew);
  try {
    const chain = verify(token, {
      roots,
      now: () => now * 1000,
      skewSeconds: skew,
      ...(options.aud === undefined ? {} : { audience: options.aud }),
      ...(revocations === undefined ? {} : { revocations }),
    });
    return { chain, now, text };
  } catch (error) {
    if (error instanceof AllowanceError) {
      const refused = rejection(error, "verification failed");
      // Expired by this clock, perhaps by seconds: say how to allow for another clock, if meant.
      if (error.code === "ERR_EXPIRED" && options.skew === undefined) {
        throw new RejectedError(
          `${refused.message}; no clock allowance by default (--skew 60s allows a minute)`,
          refused.details,
          refused.code,
        );
      }
      throw refused;
    }
    throw error;
  }
}

export function registerVerify(program: Command): void {
  program
    .command("verify")
    .description("Verify a token's whole chain offline against trusted root keys")
    .argument("<token>", "the token itself, @file, or - for stdin")
    .requiredOption(
      "--roots <file>",
      "trusted root keys: a JWKS, or one public JWK such as root.pub.jwk",
    )
    .option("--aud <endpoint>", "this endpoint's audience; refused unless the token allows it")
    .option(
      "--at <time>",
      "verify as of this time instead of now: ISO date, epoch seconds, or a duration from now",
    )
    .option("--revocations <file>", "a revocation list written by 'allowance revoke'")
    .option(
      "--skew <duration>",
      "clock allowance: accept a token this long past its expiry (or before its nbf); default 0, at most 1h",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nClock allowance: none by default — a token is expired from its exp second on. Servers using\n@allowance/verifier allow 60 s by default; pass --skew 60s to judge as they do.\n" +
        exampleHelp(
          "allowance verify @researcher.token --roots root.pub.jwk --aud https://tools.example",
        ),
    )
    .action(async (argument: string, options: VerifyCommandOptions) => {
      const { chain, now } = await verifyArgument(argument, options);
      const result = chainResult(chain, await kidOf(chain.holder), now);
      emit(options, result, () =>
        [
          `valid: ${chain.links.length} link${chain.links.length === 1 ? "" : "s"} from root ${chain.rootKid}`,
          `holder ${result.holderKid}`,
          "effective grant:",
          ...result.limits.map((line) => `  ${line}`),
          ...(result.unrestricted.length === 0
            ? []
            : [`  unrestricted: ${result.unrestricted.join(", ")}`]),
          "links (root first):",
          ...chain.linkIds.map((id, index) => {
            const label = chain.links[index]?.grant.label;
            return `  ${index} ${id}${label === undefined ? "" : `  ${quoted(label)}`}`;
          }),
        ].join("\n"),
      );
    });
}
