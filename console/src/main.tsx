import { render } from "preact";
import { initApi } from "./api";
import { App } from "./app";
import { initAuth } from "./auth";
import { loadConfig } from "./config";
import { interceptLinks } from "./router";
import "./style.css";

const root = document.getElementById("app")!;
loadConfig()
  .then((config) => {
    initAuth(config);
    initApi(config);
    interceptLinks();
    render(<App />, root);
  })
  .catch((e) => {
    root.textContent = `The console cannot start: ${e instanceof Error ? e.message : e}`;
  });
