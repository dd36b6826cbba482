/** The browser bundle's entry (`npm run build:web`): what the page at `/` imports to compute in the browser. */
export { BrowserEngine, type BrowserEngineOptions } from './engine.ts';
export { digitFromBlob, digitFromCanvas, digitFromImageData, type PreparedDigit } from './image.ts';
export { mountBenchPanel } from './bench-panel.ts';

