// Package local stores a Nix binary cache in a local directory, the layout
// file:///DIR store URLs use: DIR/nix-cache-info, DIR/<hash>.narinfo,
// DIR/nar/<file>.
//
// Promises:
//   - Store implements uploader.Cache and passes the cachetest suite.
//   - Put is atomic and durable: temporary file in the target directory,
//     fsync, rename, fsync of the directory. Readers (nix copy --from
//     file://, a web server) see the old file or the whole new one.
//   - A failed Put leaves no file behind and the old object intact; the
//     temporary file of a Put cut short by a crash is removed by New once it
//     is StaleTempAge old.
//   - Directories are created 0755 and files 0644 whatever the umask, so a
//     web server can serve the directory.
//   - Keys cannot escape the directory: absolute keys and ".." are refused.
//   - Errors are the standard library's file system errors, wrapped:
//     fs.ErrPermission, syscall.EROFS, syscall.ENOSPC and the like are what
//     uploader.Classify reads, so this backend needs no translation of its
//     own; a missing key is fs.ErrNotExist.
package local
