/** Number formats for people, shared by every front end (the CLI's lines, the dashboard). */
export const ms = (v: number): string => v.toFixed(2);
export const rate = (v: number): string => v.toFixed(1);
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
export const seconds = (millis: number): string => `${(millis / 1000).toFixed(1)} s`;
