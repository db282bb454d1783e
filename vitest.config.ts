import { defineConfig } from "vitest/config";

const conditions = ["@allowance/source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    // Property tests and subprocess tests run for seconds on a busy 2-core machine; 5 s is too tight.
    testTimeout: 30_000,
    projects: [
      ...["core", "verifier", "enforcer", "meter", "mcp", "otel", "cli"].map((name) => ({
        extends: true as const,
        test: {
          name,
          include: [`packages/${name}/test/**/*.test.ts`],
          // Starts a throwaway redis-server unless ALLOWANCE_REDIS_URL names one.
          ...(["verifier", "enforcer", "meter"].includes(name)
            ? { globalSetup: ["test/support/redis-global-setup.ts"] }
            : {}),
        },
      })),
      { extends: true as const, test: { name: "e2e", include: ["test/**/*.test.ts"] } },
    ],
  },
});
