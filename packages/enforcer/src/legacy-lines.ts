/**
 * Stored lines from before a line carried its link and field as data (spec/enforcement.md §8):
 * the SQLite upgrade to schema 3 and the Redis ledger's reading of layout-2 line sets fill them in
 * here, the one place that reads an account name.
 */
import type { LedgerLine, LineKind } from "./rule.js";

/** A line as versions 1 and 2 stored it: the link and field only inside the account name. */
export interface LegacyLine {
  readonly account: string;
  readonly kind: LineKind;
  readonly cap: number | null;
}

/**
 * Lines stored before they carried their link and field (SQLite schema 1 and 2, Redis layout 2),
 * with those read from the account names the enforcer of those versions wrote: `<link id>|<name>`,
 * the links in chain order, root first, and the name `tokens`, `usdMicros`, `risk`, `requests`,
 * `p:<provider>:<kind>` or `w<j>:<seconds>:<bucket>:<kind>`.
 */
export function legacyLines(lines: readonly LegacyLine[]): LedgerLine[] {
  let linkIndex = -1;
  let previous: string | undefined;
  return lines.map(({ account, kind, cap }) => {
    const bar = account.indexOf("|");
    const linkId = bar < 0 ? account : account.slice(0, bar);
    if (linkId !== previous) {
      linkIndex++;
      previous = linkId;
    }
    const name = account.slice(bar + 1);
    const provider = /^p:(.+):(\w+)$/.exec(name);
    const window = /^w\d+:(\d+):-?\d+:(\w+)$/.exec(name);
    const field =
      provider !== null
        ? `providers.${provider[1] as string}.${provider[2] as string}`
        : window !== null
          ? `rate.${window[1] as string}s.${window[2] as string}`
          : name;
    return { account, kind, cap, linkIndex, linkId, field };
  });
}
