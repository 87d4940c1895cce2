// THE console's navigation: one list, in display order. To add a page, add one entry here
// and one ES module `pages/<id>.js` that exports `render(root, ctx)` (it may return a
// function the console calls when the user leaves the page, e.g. to stop polling).
//   id     the URL fragment (#/<id>) and the module's file name
//   title  the nav label and the page's heading
//   needs  the permission a key must hold for the page to be listed (the server refuses
//          the page's calls anyway: hiding is a courtesy, not the check)
// `ctx` gives { api, can, el, session } (see lib.js); pages may import lib.js directly.
export const PAGES = [
  { id: "playground", title: "Playground", needs: "llm:generate" },
  { id: "titles", title: "Titles", needs: "llm:generate" },
  { id: "keys", title: "Keys", needs: "keys:read" },
  { id: "teams", title: "Teams", needs: "usage:read" },
  { id: "budgets", title: "Budgets", needs: "usage:read" },
  { id: "usage", title: "Usage", needs: "usage:read" },
  { id: "log", title: "Live log", needs: "usage:read" },
  { id: "cache", title: "Cache", needs: "usage:read" },
  { id: "guard", title: "Guard events", needs: "audit:read" },
  { id: "health", title: "Health", needs: "usage:read" },
];
