/** Assertions for misuse of an API: a TypeError or RangeError that names the argument, never an acceptance. */
import { expect } from "vitest";

export type MisuseKind = typeof TypeError | typeof RangeError;

export function expectMisuseError(thrown: unknown, name: string, kind?: MisuseKind): void {
  if (!(thrown instanceof TypeError || thrown instanceof RangeError)) {
    throw new Error(
      `expected a TypeError or RangeError naming ${name}, got ${thrown === undefined ? "an acceptance" : String(thrown)}`,
    );
  }
  if (kind !== undefined) expect(thrown).toBeInstanceOf(kind);
  expect(thrown.message).toContain(name);
}

/** The call must throw a TypeError or RangeError whose message names the argument. */
export function expectMisuse(call: () => unknown, name: string, kind?: MisuseKind): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expectMisuseError(thrown, name, kind);
}

/** `expectMisuse` for a call that may return a promise. */
export async function expectMisuseAsync(
  call: () => unknown,
  name: string,
  kind?: MisuseKind,
): Promise<void> {
  let thrown: unknown;
  try {
    await call();
  } catch (error) {
    thrown = error;
  }
  expectMisuseError(thrown, name, kind);
}
