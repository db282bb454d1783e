/**
 * Every command by name, with what the top-level help says of it; each command's module is
 * imported only by `load`. Nothing here imports more than a type, so `allowance --help` costs no
 * library (program.ts; bin.ts answers `--help` from this table without loading commander).
 */
import type { Command } from "commander";

/** A link id: the base64url of 32 bytes (spec/format.md), 43 characters. */
export const LINK_ID = /^[A-Za-z0-9_-]{43}$/;

export const DESCRIPTION = "Signed, strictly narrower budgets for AI agents";
export const HELP_AFTER =
  "\nExit codes: 0 ok, 1 rejected or denied, 2 usage error.\nEvery command has --help with an example and --json for machine output.";

export type Register = (program: Command) => void;

export interface CommandEntry {
  /** As the command registers it: the top-level help shows these without loading the command. */
  readonly description: string;
  readonly argument?: string;
  readonly options: boolean;
  readonly load: () => Promise<Register>;
}

export const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  keygen: {
    description: "Generate an Ed25519 key pair: a private JWK (mode 0600) and its public JWK",
    options: true,
    load: async () => (await import("./keygen.js")).registerKeygen,
  },
  mint: {
    description: "Sign a root grant for a holder (human units in, exact integers in the token)",
    options: true,
    load: async () => (await import("./mint.js")).registerMint,
  },
  attenuate: {
    description: "Delegate a strictly narrower grant to a new holder by appending one signed link",
    options: true,
    load: async () => (await import("./attenuate.js")).registerAttenuate,
  },
  inspect: {
    description:
      "Show a token's chain as a tree, without checking signatures (no trusted roots needed)",
    argument: "[token]",
    options: true,
    load: async () => (await import("./inspect.js")).registerInspect,
  },
  verify: {
    description: "Verify a token's whole chain offline against trusted root keys",
    argument: "<token>",
    options: true,
    load: async () => (await import("./verify.js")).registerVerify,
  },
  present: {
    description:
      "Sign a one-time proof of possession for an endpoint: the Authorization header value",
    argument: "<token>",
    options: true,
    load: async () => (await import("./present.js")).registerPresent,
  },
  revoke: {
    description: "Revoke a link id (and so every token below it) in a revocation file",
    argument: "<link-id>",
    options: true,
    load: async () => (await import("./revoke.js")).registerRevoke,
  },
  ledger: {
    description: "Read a ledger's balances for a token's chain",
    options: false,
    load: async () => (await import("./ledger.js")).registerLedger,
  },
  check: {
    description:
      "Would this action be allowed? The enforcer's answer for a tool or model call against a verified chain and the ledger (reserves nothing)",
    options: true,
    load: async () => (await import("./check.js")).registerCheck,
  },
  mcp: {
    description:
      "Serve the holder's budget to an MCP client over stdio: get_budget, list_limits, check_action, delegate",
    options: true,
    load: async () => (await import("./mcp.js")).registerMcp,
  },
  demo: {
    description: "Run the delegation story on the embedded default",
    options: true,
    load: async () => (await import("./demo.js")).registerDemo,
  },
};

/**
 * `allowance --help` as commander renders it (same layout, same wrapping at `width` columns), from
 * the table alone. A test compares the two outputs.
 */
export function renderTopHelp(width = 80): string {
  const options: [string, string][] = [
    ["-V, --version", "print the version"],
    ["-h, --help", "display help for command"],
  ];
  const commands: [string, string][] = Object.entries(COMMANDS).map(([name, entry]) => [
    `${name}${entry.options ? " [options]" : ""}${entry.argument === undefined ? "" : ` ${entry.argument}`}`,
    entry.description,
  ]);
  commands.push(["help [command]", "display help for command"]);
  const termWidth = Math.max(...[...options, ...commands].map(([term]) => term.length));
  const item = ([term, description]: [string, string]): string => {
    const room = width - termWidth - 4;
    const wrapped =
      room < 40 ? description : wrap(description, room).join(`\n${" ".repeat(termWidth + 4)}`);
    return `  ${term.padEnd(termWidth)}  ${wrapped}`;
  };
  return (
    [
      "Usage: allowance [options] [command]",
      "",
      DESCRIPTION,
      "",
      "Options:",
      ...options.map(item),
      "",
      "Commands:",
      ...commands.map(item),
      "",
    ].join("\n") +
    HELP_AFTER +
    "\n"
  );
}

/** Greedy wrapping at whitespace, as commander's boxWrap. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  lines.push(line);
  return lines;
}
