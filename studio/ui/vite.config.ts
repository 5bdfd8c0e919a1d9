/// <reference types="vitest/config" />
import { resolve } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The built bundle ships inside the relayna_studio Python package, so that
// `pip install relayna-studio` needs no node. `RELAYNA_UI_OUT` lets the
// reproducibility check build into a scratch directory instead.
const outDir = process.env.RELAYNA_UI_OUT ?? resolve(import.meta.dirname, "../src/relayna_studio/ui_dist");

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/studio": { target: process.env.STUDIO_BACKEND_URL ?? "http://127.0.0.1:8000", changeOrigin: true },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    testTimeout: 15000,
    // One jsdom per worker, not per file: the files share nothing but the mocks in setup.ts.
    isolate: false,
  },
});
