import { defineConfig } from "vite";

// No framework plugin: esbuild compiles the TSX (jsxImportSource preact from tsconfig).
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2020",
    outDir: "dist",
    emptyOutDir: true,
    // One small bundle; the CSP allows scripts from 'self' only, so nothing is inlined.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
