/**
 * Headless Chromium (Debian's package) driven over the DevTools protocol on a pipe
 * (`--remote-debugging-pipe`: commands in on fd 3, answers and events out on fd 4, each message
 * JSON ended by a NUL byte), so the tests need no browser library and no network port.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

export const CHROMIUM = "/usr/bin/chromium";

/** Why Chromium cannot run here, or undefined when it can. */
export function chromiumMissing(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium)`;
  const probe = spawnSync(CHROMIUM, ["--version"], { encoding: "utf8", timeout: 30_000 });
  if (probe.status !== 0) return `${CHROMIUM} --version failed: ${probe.stderr.trim()}`;
  return undefined;
}

interface Message {
  readonly id?: number;
  readonly method?: string;
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly message: string };
  readonly sessionId?: string;
}

export interface PageEvents {
  /** Uncaught exceptions in the page. */
  readonly exceptions: string[];
  /** console.error/warn calls and browser log entries of level error or warning. */
  readonly errors: string[];
  /** Every request the page started (the document itself included). */
  readonly requests: string[];
}

export class Browser {
  private readonly process: ChildProcess;
  private readonly input: Writable;
  private readonly profile: string;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (m: Message) => void; reject: (e: Error) => void }
  >();
  private readonly listeners = new Set<(m: Message) => void>();
  private exited: Error | undefined;

  private constructor() {
    this.profile = mkdtempSync(join(tmpdir(), "allowance-chromium-"));
    this.process = spawn(
      CHROMIUM,
      [
        "--headless",
        // The tests run as root in a container, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-pipe",
        `--user-data-dir=${this.profile}`,
        "about:blank",
      ],
      { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
    );
    this.input = this.process.stdio[3] as Writable;
    let stderr = "";
    this.process.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    let buffer = Buffer.alloc(0);
    (this.process.stdio[4] as Readable).on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let end = buffer.indexOf(0); end >= 0; end = buffer.indexOf(0)) {
        const message = JSON.parse(buffer.subarray(0, end).toString("utf8")) as Message;
        buffer = buffer.subarray(end + 1);
        this.dispatch(message);
      }
    });
    this.process.on("exit", (code, signal) => {
      this.exited = new Error(`chromium exited (${code ?? signal}): ${stderr}`);
      for (const { reject } of this.pending.values()) reject(this.exited);
      this.pending.clear();
    });
  }

  static async launch(): Promise<Browser> {
    const browser = new Browser();
    await browser.send("Browser.getVersion");
    return browser;
  }

  private dispatch(message: Message): void {
    if (message.id !== undefined) {
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      waiter?.resolve(message);
      return;
    }
    for (const listener of this.listeners) listener(message);
  }

  async send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    if (this.exited !== undefined) throw this.exited;
    const id = ++this.nextId;
    const answer = new Promise<Message>((resolve, reject) =>
      this.pending.set(id, { resolve, reject }),
    );
    this.input.write(
      JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }) +
        "\0",
    );
    const message = await answer;
    if (message.error !== undefined) throw new Error(`${method}: ${message.error.message}`);
    return message.result ?? {};
  }

  /** A new tab at `url`, `width` CSS pixels wide, once its load event has fired. */
  async open(url: string, width = 1000): Promise<Page> {
    const { targetId } = (await this.send("Target.createTarget", { url: "about:blank" })) as {
      targetId: string;
    };
    const { sessionId } = (await this.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    })) as { sessionId: string };
    const events: PageEvents = { exceptions: [], errors: [], requests: [] };
    let loaded: () => void = () => {};
    const load = new Promise<void>((resolve) => (loaded = resolve));
    this.listeners.add((message) => {
      if (message.sessionId !== sessionId) return;
      const params = message.params ?? {};
      switch (message.method) {
        case "Page.loadEventFired":
          loaded();
          break;
        case "Runtime.exceptionThrown":
          events.exceptions.push(JSON.stringify(params["exceptionDetails"]));
          break;
        case "Runtime.consoleAPICalled":
          if (params["type"] === "error" || params["type"] === "warning")
            events.errors.push(JSON.stringify(params["args"]));
          break;
        case "Log.entryAdded": {
          const entry = params["entry"] as { level: string; text: string };
          if (entry.level === "error" || entry.level === "warning") events.errors.push(entry.text);
          break;
        }
        case "Network.requestWillBeSent":
          events.requests.push((params["request"] as { url: string }).url);
          break;
      }
    });
    for (const domain of ["Page", "Runtime", "Log", "Network"])
      await this.send(`${domain}.enable`, {}, sessionId);
    await this.send(
      "Emulation.setDeviceMetricsOverride",
      { width, height: 800, deviceScaleFactor: 1, mobile: false },
      sessionId,
    );
    await this.send("Page.navigate", { url }, sessionId);
    await load;
    return new Page(this, sessionId, targetId, events);
  }

  /** Closes the browser (and so its helper processes), then removes its profile. */
  async close(): Promise<void> {
    if (this.exited === undefined) {
      const exit = new Promise((resolve) => this.process.once("exit", resolve));
      await this.send("Browser.close").catch(() => this.process.kill());
      const timer = setTimeout(() => this.process.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}

export class Page {
  constructor(
    private readonly browser: Browser,
    private readonly sessionId: string,
    private readonly targetId: string,
    readonly events: PageEvents,
  ) {}

  /** Evaluates an expression in the page (awaiting a promise) and returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = (await this.browser.send(
      "Runtime.evaluate",
      { expression, awaitPromise: true, returnByValue: true },
      this.sessionId,
    )) as { result: { value: T }; exceptionDetails?: unknown };
    if (exceptionDetails !== undefined)
      throw new Error(`evaluate failed: ${JSON.stringify(exceptionDetails)}`);
    return result.value;
  }

  /** Waits until `condition` (an expression) is true in the page. */
  async waitFor(condition: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate<boolean>(`Boolean(${condition})`))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${condition}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Types `text` into the focused element as keyboard input would. */
  async insertText(text: string): Promise<void> {
    await this.browser.send("Input.insertText", { text }, this.sessionId);
  }

  /** A PNG of the whole page, not only the viewport. */
  async screenshot(): Promise<Buffer> {
    const { cssContentSize } = (await this.browser.send(
      "Page.getLayoutMetrics",
      {},
      this.sessionId,
    )) as { cssContentSize: { width: number; height: number } };
    const { data } = (await this.browser.send(
      "Page.captureScreenshot",
      {
        format: "png",
        captureBeyondViewport: true,
        clip: {
          x: 0,
          y: 0,
          width: Math.ceil(cssContentSize.width),
          height: Math.ceil(cssContentSize.height),
          scale: 1,
        },
      },
      this.sessionId,
    )) as { data: string };
    return Buffer.from(data, "base64");
  }

  async close(): Promise<void> {
    await this.browser.send("Target.closeTarget", { targetId: this.targetId });
  }
}
