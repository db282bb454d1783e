import { describe, expect, it } from "vitest";
import { describeDemo, runDemo, type DemoResult } from "@allowance/cli";

describe("allowance demo", () => {
  let result: DemoResult;

  it("runs the whole story", async () => {
    result = await runDemo();
    expect(result.steps.length).toBeGreaterThan(10);
  });

  it("lets the researcher search and use its provider, and keeps it off the others", () => {
    const researcher = result.steps.filter((s) => s.agent === "researcher").map((s) => s.decision);
    expect(researcher).toEqual(["ALLOW", "ALLOW", "ALLOW", "ALLOW", "DENY:PROVIDER_NOT_ALLOWED"]);
  });

  it("stops the looping writer at its token cap, with a capped answer before the denial", () => {
    const writer = result.steps.filter((s) => s.agent === "writer").map((s) => s.decision);
    expect(writer.at(-1)).toBe("DENY:BUDGET_TOKENS");
    expect(writer.at(-2)).toBe("ALLOW_WITH_CAPS");
    expect(writer.slice(0, -2).every((d) => d === "ALLOW")).toBe(true);
  });

  it("stops the mailer when its risk points run out, and refuses its wider delegation", () => {
    const mailer = result.steps.filter((s) => s.agent === "mailer").map((s) => s.decision);
    expect(mailer).toEqual([
      "ALLOW",
      "DENY:ARGUMENT_NOT_ALLOWED",
      "ALLOW",
      "DENY:BUDGET_RISK",
      "ERR_WIDENED",
    ]);
    expect(result.refusedWidening).toEqual({
      code: "ERR_WIDENED",
      fields: ["usdMicros", "risk", "tools"],
    });
  });

  it("lets the mailer mail @example.com only: another domain is denied, naming link, tool, argument and constraint, and costs nothing", () => {
    const mails = result.steps.filter((s) => s.action.startsWith("send_email"));
    expect(mails.slice(0, 2).map((s) => [s.action, s.status, s.decision])).toEqual([
      ["send_email #1 to team@example.com", 200, "ALLOW"],
      ["send_email #2 to press@rival.example", 403, "DENY:ARGUMENT_NOT_ALLOWED"],
    ]);
    expect(mails[1]?.outcome).toBe(
      "denied: the arguments of tool send_email are not allowed by link 1's grant: to has domain rival.example, not one allowed (args.send_email.to: emailDomain example.com)",
    );
    // Denied before anything was held: two mails of 10 risk points each were charged, not three.
    const mailer = result.tree.children.find((c) => c.name === "mailer");
    expect(mailer?.limits.find((l) => l.field === "risk")).toMatchObject({ cap: 20, spent: 20 });
    expect(mails.filter((s) => s.decision === "ALLOW")).toHaveLength(2);
  });

  it("refuses the thief's stolen token, bare or presented with the wrong key", () => {
    const thief = result.steps.filter((s) => s.agent === "thief");
    expect(thief.map((s) => [s.status, s.decision])).toEqual([
      [401, "ERR_PRESENTATION"],
      [401, "ERR_PRESENTATION"],
    ]);
  });

  it("ends with a budget tree whose root totals are the sum of its children", () => {
    const { tree } = result;
    expect(tree.children.map((c) => c.name)).toEqual(["researcher", "writer", "mailer"]);
    for (const field of ["tokens", "usdMicros", "risk"]) {
      const root = tree.limits.find((l) => l.field === field);
      const sum = tree.children.reduce(
        (total, child) => total + (child.limits.find((l) => l.field === field)?.spent ?? 0),
        0,
      );
      expect(root?.spent, field).toBe(sum);
    }
    const writerTokens = tree.children[1]?.limits.find((l) => l.field === "tokens");
    expect(writerTokens).toMatchObject({ cap: 50_000, spent: 50_000, held: 0, remaining: 0 });
    const charged = result.steps.reduce((total, s) => total + (s.usdMicros ?? 0), 0);
    expect(tree.limits.find((l) => l.field === "usdMicros")?.spent).toBe(charged);
  });

  it("prints plain text when colour is off", () => {
    const text = describeDemo(result);
    expect(text).not.toContain("\u001b[");
    expect(text).toContain("Budgets per link");
  });
});
