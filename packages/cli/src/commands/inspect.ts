import { encodeToken, toBase64url } from "@allowance/core/format";
import type { Command } from "commander";
import { describeViolation } from "../describe.js";
import { UsageError } from "../errors.js";
import { inspectLinks, type InspectedLink } from "../inspection.js";
import { readGrants, readToken } from "../io.js";
import { emit, exampleHelp } from "../output.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description(
      "Show a token's chain as a tree, without checking signatures (no trusted roots needed)",
    )
    .argument("[token]", "the token itself, @file, or - for stdin (optional with --html)")
    .option(
      "--html",
      "write the inspector page instead: one self-contained HTML file, on stdout, that draws a token's chain and checks it against pasted root keys in the browser, offline",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance inspect @researcher.token",
        "allowance mint … | allowance inspect -",
        "allowance inspect --html @researcher.token > inspector.html",
      ),
    )
    .action(async (argument: string | undefined, options: { json?: boolean; html?: boolean }) => {
      if (options.html === true) {
        process.stdout.write(await inspectorPageFor(argument, options));
        return;
      }
      if (argument === undefined)
        throw new UsageError(
          "missing required argument 'token' (the token, @file or - for stdin; or --html for the inspector page)",
        );
      const { text, token } = readToken(argument);
      const rootKid = toBase64url(token.rootKid);
      const links = await inspectLinks(token, readGrants(token), rootKid);
      const result = {
        signaturesChecked: false,
        rootKid,
        bytes: encodeToken(token).length,
        characters: text.length,
        links,
      };
      emit(options, result, () => describeChain(result));
    });
}

/**
 * The inspector page, with the token filled in when one is given (checked first, as `inspect`
 * checks it). Its module holds the whole page, so it is loaded only here.
 */
export async function inspectorPageFor(
  argument: string | undefined,
  options: { json?: boolean },
): Promise<string> {
  if (options.json === true)
    throw new UsageError("--html and --json cannot be combined: --html writes an HTML page");
  if (argument !== undefined && /\.html?$/i.test(argument))
    throw new UsageError(
      `--html writes the page to stdout and takes no file name (got ${JSON.stringify(argument)}); redirect it: allowance inspect --html > inspector.html`,
    );
  let text: string | undefined;
  if (argument !== undefined) {
    const read = readToken(argument);
    readGrants(read.token);
    text = read.text;
  }
  const { inspectorPage } = await import("../inspector.js");
  return inspectorPage(text);
}

function describeChain(result: {
  rootKid: string;
  bytes: number;
  links: readonly InspectedLink[];
}): string {
  const lines = [
    `token: ${result.links.length} link${result.links.length === 1 ? "" : "s"}, ${result.bytes} bytes — signatures NOT checked (run 'allowance verify --roots …' to check them)`,
    `root ${result.rootKid}`,
  ];
  for (const link of result.links) {
    const pad = "   ".repeat(link.index);
    const body = `${pad}   `;
    lines.push(`${pad}└─ link ${link.index}  id ${link.id}`);
    lines.push(`${body}signed by ${link.index === 0 ? "root " : ""}${link.signerKid}`);
    lines.push(`${body}holder    ${link.holderKid}`);
    lines.push(`${body}grant     ${link.describe.join(" · ") || "(inherits everything)"}`);
    if (link.index > 0) {
      const narrowed = link.narrowed.map((n) => `${n.field} ${n.parent} → ${n.child}`);
      lines.push(`${body}narrowed  ${narrowed.join(" · ") || "(nothing: same as its parent)"}`);
    }
    if (link.violations !== undefined)
      lines.push(
        `${body}WIDER THAN ITS PARENT: ${link.violations.map(describeViolation).join("; ")}`,
      );
  }
  return lines.join("\n");
}
