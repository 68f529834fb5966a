import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import App from "./App.jsx";
import "./app.css";

// StrictMode mounts every component twice in development: useChannel resumes from the offset it
// has seen instead of subscribing from `since` again, so nothing shows twice.
createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
