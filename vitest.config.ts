import { defineConfig } from "vitest/config";

const conditions = ["@allowance/source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    projects: [
      ...["core", "verifier", "enforcer", "cli"].map((name) => ({
        extends: true as const,
        test: { name, include: [`packages/${name}/test/**/*.test.ts`] },
      })),
      { extends: true as const, test: { name: "e2e", include: ["test/**/*.test.ts"] } },
    ],
  },
});
