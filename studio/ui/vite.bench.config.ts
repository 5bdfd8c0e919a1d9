// Builds the benchmark pages (never shipped) into a scratch directory.
import { resolve } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  root: resolve(import.meta.dirname, "bench"),
  base: "./",
  build: {
    outDir: process.env.RELAYNA_UI_OUT ?? resolve(import.meta.dirname, "bench-dist"),
    emptyOutDir: true,
    rollupOptions: { input: { graph: resolve(import.meta.dirname, "bench/graph.html") } },
  },
});
