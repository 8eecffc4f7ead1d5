// Type-checks arb's Grafana dashboards against Grafana's own `Dashboard` type (npm @grafana/schema).
//
// tests/unit/deploy/test_grafana.py copies this file and tsconfig.json next to the npm packages that `./run test`
// installs (.cache/grafana-check/, git-ignored), writes one module per dashboard there:
//
//     import type { DashboardJson } from './check';
//     export const dashboard: DashboardJson = <the dashboard's JSON text, verbatim>;
//
// and runs `tsc --noEmit`. The JSON text is an object literal there, so TypeScript also rejects keys that `Dashboard`
// (or a panel, target list, variable, annotation...) does not have, not only values of the wrong type.
import type { Dashboard } from '@grafana/schema';

// A JSON file can hold the value of an enum member ("absolute"), never the member (ThresholdsMode.Absolute), and
// TypeScript does not accept a string literal where a string enum is expected. `Json<T>` is `T` with every string
// enum replaced by the union of its values (a template literal type turns an enum into its values); every other
// type, optional or required key is kept as it is.
export type Json<T> = T extends string
  ? `${T}`
  : T extends ReadonlyArray<infer U>
    ? Array<Json<U>>
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

export type DashboardJson = Json<Dashboard>;
