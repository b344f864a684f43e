"""A local-disk storage that fails on demand: test code for the fault tests."""

from django.core.files.storage import FileSystemStorage


class FlakyStorage(FileSystemStorage):
    """Fails the next write (and/or delete) when told to, like a full disk or a network error."""

    fail_saves = False
    fail_deletes = False

    def _save(self, name, content):
        if self.fail_saves:
            # Write part of the object first, as a dying connection would.
            super()._save(name + ".partial", content)
            raise OSError("injected: storage unavailable")
        return super()._save(name, content)

    def delete(self, name):
        if self.fail_deletes:
            raise OSError("injected: delete refused")
        return super().delete(name)
