/** Number formats shared by the dashboard's components. */
export const ms = (v: number): string => (v >= 100 ? v.toFixed(1) : v.toFixed(2));
export const rate = (v: number): string => (v >= 1000 ? v.toFixed(0) : v.toFixed(1));
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
export const seconds = (millis: number): string => `${(millis / 1000).toFixed(1)} s`;
