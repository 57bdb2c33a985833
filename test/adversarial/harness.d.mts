// Types of harness.mjs for test/adversarial.test.ts.
export interface Finding {
  op: string;
  cls: string;
  name: string;
  seed: number;
  index: number;
  repro: string;
  detail: string;
  count: number;
}
export interface RunResult {
  findings: Finding[];
  calls: number;
  perOp: Record<string, number>;
  ms: number;
  generators: number;
  reloads: number;
  stoppedAt?: number;
}
export const DOCUMENTED_CODES: string[];
export function runAdversarial(
  api: unknown,
  options: {
    seed: number;
    calls: number;
    from?: number;
    timeoutMs?: number;
    reload?: () => Promise<unknown>;
    filter?: (g: { op: string; name: string; kind: string }) => boolean;
    onCall?: (i: number, op: string, name: string, ms: number) => void;
  },
): Promise<RunResult>;
export function formatFindings(findings: Finding[]): string;
