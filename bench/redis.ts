/**
 * A Redis for the ledger benchmark: ALLOWANCE_REDIS_URL if set, else a throwaway `redis-server` on
 * 127.0.0.1 when one is installed, else none (the Redis rows are left out and the bench says so).
 * The throwaway server runs as the ledger requires by default (spec/enforcement.md §8.1): AOF on,
 * `appendfsync everysec`, its files in a temporary directory removed on stop.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface BenchRedis {
  readonly url: string;
  stop(): Promise<void>;
}

export async function benchRedis(): Promise<BenchRedis | undefined> {
  const given = process.env["ALLOWANCE_REDIS_URL"];
  if (given !== undefined && given !== "") return { url: given, stop: async () => undefined };
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
  const dir = mkdtempSync(join(tmpdir(), "allowance-bench-redis-"));
  const server: ChildProcess = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--dir",
      dir,
    ],
    { stdio: "ignore" },
  );
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("redis-cli", ["-p", String(port), "ping"], { stdio: "ignore" });
      break;
    } catch {
      await sleep(50);
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      server.kill();
      await new Promise((resolve) => server.once("exit", resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
