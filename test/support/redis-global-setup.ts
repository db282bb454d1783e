/**
 * Vitest global setup for the tests that need Redis (registered for the enforcer project in
 * vitest.config.ts). With ALLOWANCE_REDIS_URL set, that server is used. Otherwise a throwaway
 * `redis-server` is started on 127.0.0.1 on a free port, with AOF on in a temporary directory, as
 * the Redis ledger requires (installed first with apt-get when it is missing and we are root), and
 * stopped at teardown. When no Redis can be
 * had, CI fails here, loudly; a developer's run skips the Redis tests with a warning.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection, createServer } from "node:net";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The Redis URL for the tests, or "" when there is none (the Redis tests are skipped). */
    redisUrl: string;
  }
}

export default async function setup(
  project: TestProject,
): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.ALLOWANCE_REDIS_URL;
  if (given !== undefined && given !== "") {
    project.provide("redisUrl", given);
    return undefined;
  }
  let server: ChildProcess | undefined;
  try {
    if (!hasRedisServer()) install();
    const port = await freePort();
    // Through a shell that stops the server when its stdin closes: at teardown, and also when
    // this process dies without one (killed by a timeout), so no server outlives the run.
    const script =
      'redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly yes --dir "$2" >/dev/null 2>&1 & pid=$!; read -r _; kill "$pid"; wait "$pid"; rm -rf "$2"';
    const dir = mkdtempSync(join(tmpdir(), "allowance-redis-"));
    server = spawn("sh", ["-c", script, "redis-global-setup", String(port), dir], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    const exited = new Promise<never>((_, reject) =>
      server?.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPong(port, 10_000), exited]);
    const url = `redis://127.0.0.1:${port}`;
    // Child processes the tests fork (multi-process workers) inherit it.
    process.env.ALLOWANCE_REDIS_URL = url;
    project.provide("redisUrl", url);
  } catch (error) {
    server?.stdin?.end();
    const reason = error instanceof Error ? error.message : String(error);
    if (process.env.CI)
      throw new Error(
        `Redis is required in CI and could not be started: ${reason}. Set ALLOWANCE_REDIS_URL or install redis-server.`,
      );
    console.warn(
      `\n⚠ SKIPPING the Redis tests: no Redis (${reason}). Set ALLOWANCE_REDIS_URL or install redis-server.\n`,
    );
    project.provide("redisUrl", "");
    return undefined;
  }
  const child = server;
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once("exit", resolve));
    child.stdin?.end();
    await gone;
  };
}

function hasRedisServer(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function install(): void {
  if (process.getuid?.() !== 0)
    throw new Error("redis-server is not installed (and installing it needs root)");
  console.warn("redis-server is missing: installing it with apt-get");
  execFileSync("sh", ["-c", "apt-get update && apt-get install -y redis-server"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

/** Resolves once the server answers PING; rejects after `timeoutMs`. */
async function waitForPong(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answered = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port });
      let reply = "";
      socket.setTimeout(500, () => socket.destroy());
      socket.on("connect", () => socket.write("PING\r\n"));
      socket.on("data", (data) => {
        reply += data.toString();
        if (reply.includes("\r\n")) socket.end();
      });
      socket.on("error", () => undefined);
      socket.on("close", () => resolve(reply.startsWith("+PONG")));
    });
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
