"""Reading and writing files; the spatial core never touches the file system itself."""
