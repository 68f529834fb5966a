// Vite serves the app and proxies the hub's REST API (/api) and WebSocket (/ws) on the same origin,
// in `vite` (dev) and in `vite preview` (the built files). The hub has no CORS headers: the page
// reaches REST only through a same-origin proxy (this one in development, nginx or the like in
// production). The WebSocket keeps the browser's Origin, which the hub checks: start the hub with
// `--allowed-origin` naming this server (see README.md).
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const hub = (process.env.MTBRIDGE_HUB || "http://127.0.0.1:8765").replace(/\/+$/, "");
const proxy = {
  "/api": { target: hub },
  "/ws": { target: hub.replace(/^http/, "ws"), ws: true },
};

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
  build: { sourcemap: true },
});
