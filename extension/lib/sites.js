// Which of the user's sites a page belongs to, and which files are photos to mark.
// The agent names sites (the registrable domain, e.g. "instagram.com"); a host belongs to a site when it is
// the site itself or a subdomain of it.
(function (exports) {
  "use strict";

  const PRESET_SITES = [
    "instagram.com", "facebook.com", "x.com", "flickr.com", "reddit.com", "tumblr.com", "pinterest.com",
    "linkedin.com", "bsky.app", "threads.net", "vk.com", "deviantart.com",
  ];

  function normaliseHost(host) {
    return String(host || "").trim().toLowerCase().replace(/\.$/, "").replace(/^\[(.*)\]$/, "$1");
  }

  // The settings of the site `host` belongs to, from `sites` (the agent's list), or null. The longest match
  // wins, so "photos.example.co.uk" picks "example.co.uk" over a hypothetical "co.uk".
  function siteForHost(host, sites) {
    const name = normaliseHost(host);
    if (!name || !Array.isArray(sites)) return null;
    let best = null;
    for (const entry of sites) {
      const site = normaliseHost(entry && entry.site);
      if (!site) continue;
      if ((name === site || name.endsWith("." + site)) && (!best || site.length > best.site.length)) best = entry;
    }
    return best;
  }

  // The enabled site's settings for `host`, or null when marking is off there.
  function enabledSiteForHost(host, sites) {
    const entry = siteForHost(host, sites);
    return entry && entry.enabled ? entry : null;
  }

  const IMAGE_EXTENSIONS = /\.(jpe?g|jfif|pjpeg|png|apng|webp|gif|bmp|tiff?|heic|heif|avif)$/i;

  // Whether a file is a photo the agent should see: by type, or by name when the browser gave no type.
  function isImageFile(file) {
    if (!file) return false;
    if (file.type) return /^image\//i.test(file.type) && !/^image\/svg/i.test(file.type);
    return IMAGE_EXTENSIONS.test(file.name || "");
  }

  Object.assign(exports, {PRESET_SITES, siteForHost, enabledSiteForHost, isImageFile, normaliseHost});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
