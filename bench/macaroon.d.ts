/** The part of `macaroon` 3.0.4 (which ships no types) that the benchmarks use. */
declare module "macaroon" {
  export interface MacaroonJSONV2 {
    v: 2;
    s?: string;
    s64?: string;
    i?: string;
    i64?: string;
    l?: string;
    c?: { i?: string; i64?: string; v?: string; v64?: string; l?: string }[];
  }
  export interface Macaroon {
    addFirstPartyCaveat(caveatId: string | Uint8Array): void;
    clone(): Macaroon;
    /** Throws when a caveat check fails or the signature does not match. */
    verify(
      rootKey: Uint8Array,
      check: (condition: string) => string | null,
      discharges?: Macaroon[],
    ): void;
    exportJSON(): MacaroonJSONV2;
    /** Crashes in 3.0.4 once the buffer has to grow (4+ caveats): `_grow` compares with an undefined capacity. */
    exportBinary(): Uint8Array;
    readonly caveats: readonly unknown[];
  }
  export function newMacaroon(params: {
    identifier: string | Uint8Array;
    location?: string;
    rootKey: Uint8Array;
    version?: 1 | 2;
  }): Macaroon;
  export function importMacaroon(obj: string | Uint8Array | MacaroonJSONV2): Macaroon;
}
