"""Files from the clipboard and from dropped folders go through the same checks and upload like dropped files."""

from __future__ import annotations

import base64

from .support import BrowserTestCase, png_bytes, sha256_file

PHOTOS = {"photos": {"accept": ".png,.txt", "max_entries": 3, "max_file_size": 10_000_000}}

# A real directory tree in the page's sandboxed file system (FileSystemDirectoryEntry objects, as a folder drop
# gives them), dropped on the zone. Only the DataTransfer around the entries is built here: a page cannot put
# directory entries into a real one.
FOLDER_DROP = """async ({selector, files}) => {
  const fs = await new Promise((ok, fail) => webkitRequestFileSystem(window.TEMPORARY, 1 << 24, ok, fail));
  const dir = (parent, name) => new Promise((ok, fail) => parent.getDirectory(name, {create: true}, ok, fail));
  const write = (parent, name, bytes) => new Promise((ok, fail) => parent.getFile(name, {create: true}, (entry) => {
    entry.createWriter((writer) => {
      writer.onwriteend = () => ok(entry);
      writer.onerror = fail;
      writer.write(new Blob([bytes]));
    }, fail);
  }, fail));
  const top = await dir(fs.root, "holiday");
  for (const f of files) {
    let parent = top;
    const parts = f.path.split("/");
    for (const part of parts.slice(0, -1)) parent = await dir(parent, part);
    await write(parent, parts[parts.length - 1], Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0)));
  }
  const target = document.querySelector(selector);
  const transfer = {types: ["Files"], files: [], items: [{kind: "file", webkitGetAsEntry: () => top}],
                    dropEffect: "none"};
  for (const type of ["dragenter", "dragover", "drop"]) {
    const event = new DragEvent(type, {bubbles: true, cancelable: true});
    Object.defineProperty(event, "dataTransfer", {value: transfer});
    target.dispatchEvent(event);
  }
  return Object.prototype.toString.call(top);  // the browser's own DirectoryEntry, not a stand-in
}"""

PASTE = """({selector, name, type, data}) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, {type}));
  const target = selector ? document.querySelector(selector) : document.body;
  const event = new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true});
  return target.dispatchEvent(event) === false;  // true when the client took the paste (preventDefault)
}"""


class PasteTests(BrowserTestCase):

    def paste(self, page, data: bytes, name: str = "image.png", type_: str = "image/png",  # type: ignore[no-untyped-def]
              selector: str | None = None) -> bool:
        return page.evaluate(PASTE, {"selector": selector, "name": name, "type": type_,
                                     "data": base64.b64encode(data).decode()})

    def test_a_pasted_image_uploads_into_the_pages_drop_zone(self) -> None:
        page = self.open_page(PHOTOS)
        data = png_bytes(40_000)
        self.assertTrue(self.paste(page, data))
        entries = self.wait_all_complete(page, 1)
        self.assertEqual((entries[0]["name"], entries[0]["uploadName"]), ("image.png", "photos"))
        self.assertEqual(self.server_state(page)["entries"][0]["size"], len(data))
        self.assertEqual(page.locator("#preview-photos .upload-preview-item").count(), 1)
        self.assertEqual(self.events(page, "djust:upload:progress")[-1]["target"], "drop-photos")

    def test_a_paste_goes_to_the_zone_that_has_the_focus(self) -> None:
        page = self.open_page({**PHOTOS, "docs": {"accept": ".png", "max_entries": 2}})
        page.focus("#drop-docs")
        self.assertTrue(self.paste(page, png_bytes(1000), selector="#drop-docs"))
        self.assertEqual(self.wait_all_complete(page, 1)[0]["uploadName"], "docs")

    def test_a_pasted_file_is_checked_like_a_dropped_one(self) -> None:
        page = self.open_page(PHOTOS)
        self.paste(page, b"MZ\x90\x00", name="tool.exe", type_="application/x-msdownload")
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        error = self.events(page, "djust:upload:error")[0]["detail"]
        self.assertEqual((error["file"], error["code"], error["ref"]), ("tool.exe", "not_accepted", None))
        self.assertEqual(page.evaluate("window.djUploads.entries().length"), 0)

    def test_pasted_text_is_left_to_the_page(self) -> None:
        page = self.open_page(PHOTOS)
        taken = page.evaluate("""() => {
          const transfer = new DataTransfer();
          transfer.setData("text/plain", "hello");
          return !document.getElementById("title").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
        }""")
        self.assertFalse(taken)
        self.assertEqual(page.evaluate("window.djUploads.entries().length"), 0)


class FolderTests(BrowserTestCase):

    def drop_folder(self, page, files: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
        payload = [{"path": path, "data": base64.b64encode(data).decode()} for path, data in files.items()]
        self.assertEqual(page.evaluate(FOLDER_DROP, {"selector": "#drop-photos .hint", "files": payload}),
                         "[object DirectoryEntry]")

    def test_a_dropped_folder_uploads_its_files_with_their_relative_paths(self) -> None:
        page = self.open_page(PHOTOS)
        files = {"a.png": png_bytes(5000), "day1/b.png": png_bytes(6000), "day1/notes.txt": b"sunny\n"}
        self.drop_folder(page, files)
        entries = self.wait_all_complete(page, 3)
        self.assertEqual({e["name"]: e["path"] for e in entries},
                         {"a.png": "holiday/a.png", "b.png": "holiday/day1/b.png", "notes.txt": "holiday/day1/notes.txt"})
        server = {e["name"]: e for e in self.server_state(page)["entries"]}
        self.assertEqual({name: e["relative_path"] for name, e in server.items()},
                         {"a.png": "holiday/a.png", "b.png": "holiday/day1/b.png", "notes.txt": "holiday/day1/notes.txt"})
        self.assertEqual(server["b.png"]["sha256"], entries[[e["name"] for e in entries].index("b.png")]["sha256"])
        self.assertFalse(page.evaluate("document.getElementById('drop-photos').classList.contains('upload-dragover')"))

    def test_a_folder_with_more_files_than_the_slot_takes_uploads_only_as_many(self) -> None:
        page = self.open_page(PHOTOS)
        self.drop_folder(page, {f"p{i}.png": png_bytes(1000 + i) for i in range(6)})
        self.wait_all_complete(page, 3)
        errors = self.events(page, "djust:upload:error")
        self.assertEqual([e["detail"]["code"] for e in errors], ["too_many_files"])
        self.assertEqual(len(self.server_state(page)["entries"]), 3)

    def test_each_file_of_a_folder_is_checked_as_usual(self) -> None:
        page = self.open_page(PHOTOS)
        self.drop_folder(page, {"ok.png": png_bytes(1000), "run.exe": b"MZ\x90\x00"})
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["path"], "holiday/ok.png")
        errors = [e["detail"] for e in self.events(page, "djust:upload:error")]
        self.assertEqual([(e["file"], e["code"]) for e in errors], [("run.exe", "not_accepted")])

    def test_a_folder_chosen_in_a_directory_input_carries_its_relative_paths(self) -> None:
        page = self.open_page(PHOTOS)
        folder = self.files_dir / "trip"
        (folder / "inner").mkdir(parents=True)
        (folder / "x.png").write_bytes(png_bytes(2000))
        (folder / "inner" / "y.png").write_bytes(png_bytes(3000))
        page.eval_on_selector("#input-photos", "(e) => e.setAttribute('webkitdirectory', '')")
        page.set_input_files("#input-photos", str(folder))
        entries = self.wait_all_complete(page, 2)
        self.assertEqual(sorted(e["path"] for e in entries), ["trip/inner/y.png", "trip/x.png"])
        server = sorted(e["relative_path"] for e in self.server_state(page)["entries"])
        self.assertEqual(server, ["trip/inner/y.png", "trip/x.png"])
        self.assertEqual({e["sha256"] for e in entries},
                         {sha256_file(folder / "x.png"), sha256_file(folder / "inner" / "y.png")})
