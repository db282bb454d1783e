/**
 * A member of a caller's options object as a property read finds it (its own, or inherited from
 * the caller's own prototypes: a class's getters), but never one that only Object.prototype holds:
 * a polluted `Object.prototype.backend` or `.limits` is no option anyone gave.
 */
export function memberOf(object: object, name: string): unknown {
  for (
    let holder: object | null = object;
    holder !== null && holder !== Object.prototype;
    holder = Object.getPrototypeOf(holder) as object | null
  )
    if (Object.hasOwn(holder, name)) return (object as Record<string, unknown>)[name];
  return undefined;
}
