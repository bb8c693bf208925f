// Drives Debian's Firefox ESR through WebDriver BiDi (puppeteer-core): installs the real extension, opens a page of
// the test site and selects a real photo in its file input. tests/test_extension_firefox.py runs it and checks
// the bytes the site received. Usage: node firefox_upload.mjs EXTENSION_DIR PAGE_URL PHOTO PROFILE_DIR
import puppeteer from "puppeteer-core";

const [extension, url, photo, profile] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox", executablePath: "/usr/bin/firefox-esr", headless: true, userDataDir: profile,
  extraPrefsFirefox: {"extensions.manifestV3.enabled": true, "xpinstall.signatures.required": false},
});
try {
  const id = await browser.installExtension(extension);
  console.log(`installed ${id}`);
  const page = await browser.newPage();
  await page.goto(url);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the content script asks for the site's settings
  const input = await page.$("#file");
  await input.uploadFile(photo);
  await page.waitForFunction(() => document.body.dataset.uploaded === "1", {timeout: 60000});
  console.log("uploaded");
} finally {
  await browser.close();
}
