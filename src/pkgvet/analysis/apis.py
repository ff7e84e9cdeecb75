"""API families as data: which qualified names give code which capability.

Rules and features read these tables instead of listing names themselves (the deny-list-as-data
shape of bandit's blacklists). A name matches an entry exactly, or by prefix when the entry ends
with a dot (``"subprocess."`` covers every function of the module).
"""

from __future__ import annotations

from enum import StrEnum


class Cap(StrEnum):
    """A capability a piece of code has, derived from the APIs it calls or references."""

    PROCESS = "process"  # runs another program
    EXEC = "exec"  # runs Python code from data
    NETWORK = "network"  # talks to another host
    DOWNLOAD = "download"  # fetches a remote file to disk
    SOCKET = "socket"  # raw sockets
    DNS = "dns"  # name lookups (a channel for exfiltration)
    DUP2 = "dup2"  # rewires file descriptors (reverse shells)
    FILE_WRITE = "file_write"
    FILE_DELETE = "file_delete"
    CHMOD = "chmod"
    ENV = "env"  # reads the environment
    FINGERPRINT = "fingerprint"  # user name, host name, platform, addresses
    DECODE = "decode"  # decodes or decompresses data
    MARSHAL = "marshal"  # loads code objects
    DYNAMIC_IMPORT = "dynamic_import"
    CLIPBOARD = "clipboard"
    KEYLOG = "keylog"
    SCREENSHOT = "screenshot"
    DECRYPT = "decrypt"  # DPAPI, AES: browser password stores
    REGISTRY = "registry"  # Windows registry writes
    IMAGE = "image"  # reads pixels (steganography)
    CTYPES = "ctypes"  # native calls, shellcode


CALLS: dict[str, Cap] = {
    # process execution
    "os.system": Cap.PROCESS,
    "os.popen": Cap.PROCESS,
    "os.popen2": Cap.PROCESS,
    "os.popen3": Cap.PROCESS,
    "os.popen4": Cap.PROCESS,
    "os.startfile": Cap.PROCESS,
    "os.execl": Cap.PROCESS,
    "os.execle": Cap.PROCESS,
    "os.execlp": Cap.PROCESS,
    "os.execlpe": Cap.PROCESS,
    "os.execv": Cap.PROCESS,
    "os.execve": Cap.PROCESS,
    "os.execvp": Cap.PROCESS,
    "os.execvpe": Cap.PROCESS,
    "os.spawnl": Cap.PROCESS,
    "os.spawnle": Cap.PROCESS,
    "os.spawnlp": Cap.PROCESS,
    "os.spawnv": Cap.PROCESS,
    "os.spawnve": Cap.PROCESS,
    "os.spawnvp": Cap.PROCESS,
    "os.posix_spawn": Cap.PROCESS,
    "os.posix_spawnp": Cap.PROCESS,
    "subprocess.": Cap.PROCESS,
    "commands.getoutput": Cap.PROCESS,
    "commands.getstatusoutput": Cap.PROCESS,
    "popen2.": Cap.PROCESS,
    "pty.spawn": Cap.PROCESS,
    "platform.popen": Cap.PROCESS,
    "asyncio.create_subprocess_shell": Cap.PROCESS,
    "asyncio.create_subprocess_exec": Cap.PROCESS,
    "win32api.ShellExecute": Cap.PROCESS,
    "win32process.CreateProcess": Cap.PROCESS,
    "ctypes.windll.shell32.ShellExecuteW": Cap.PROCESS,
    "ctypes.windll.shell32.ShellExecuteA": Cap.PROCESS,
    "sh.": Cap.PROCESS,
    "plumbum.local": Cap.PROCESS,
    # Python code from data
    "exec": Cap.EXEC,
    "eval": Cap.EXEC,
    "compile": Cap.EXEC,
    "execfile": Cap.EXEC,
    "builtins.exec": Cap.EXEC,
    "builtins.eval": Cap.EXEC,
    "__builtin__.exec": Cap.EXEC,
    "__builtin__.eval": Cap.EXEC,
    "runpy.run_path": Cap.EXEC,
    "runpy.run_module": Cap.EXEC,
    "types.FunctionType": Cap.EXEC,
    "marshal.loads": Cap.MARSHAL,
    "__import__": Cap.DYNAMIC_IMPORT,
    "importlib.import_module": Cap.DYNAMIC_IMPORT,
    "importlib.__import__": Cap.DYNAMIC_IMPORT,
    # network
    "urllib.request.urlopen": Cap.NETWORK,
    "urllib.request.Request": Cap.NETWORK,
    "urllib.request.build_opener": Cap.NETWORK,
    "urllib.urlopen": Cap.NETWORK,
    "urllib2.urlopen": Cap.NETWORK,
    "urllib2.Request": Cap.NETWORK,
    "urllib.request.urlretrieve": Cap.DOWNLOAD,
    "urllib.urlretrieve": Cap.DOWNLOAD,
    "wget.download": Cap.DOWNLOAD,
    "git.Repo.clone_from": Cap.DOWNLOAD,  # GitPython: a repository is code fetched to disk
    "requests.": Cap.NETWORK,
    "httpx.": Cap.NETWORK,
    "aiohttp.ClientSession": Cap.NETWORK,
    "aiohttp.request": Cap.NETWORK,
    "urllib3.PoolManager": Cap.NETWORK,
    "urllib3.request": Cap.NETWORK,
    "http.client.HTTPConnection": Cap.NETWORK,
    "http.client.HTTPSConnection": Cap.NETWORK,
    "httplib.HTTPConnection": Cap.NETWORK,
    "httplib.HTTPSConnection": Cap.NETWORK,
    "pycurl.Curl": Cap.NETWORK,
    "ftplib.FTP": Cap.NETWORK,
    "smtplib.SMTP": Cap.NETWORK,
    "smtplib.SMTP_SSL": Cap.NETWORK,
    "telnetlib.Telnet": Cap.NETWORK,
    "paramiko.SSHClient": Cap.NETWORK,
    "websocket.create_connection": Cap.NETWORK,
    "websockets.connect": Cap.NETWORK,
    "discord_webhook.DiscordWebhook": Cap.NETWORK,
    "dhooks.Webhook": Cap.NETWORK,
    "socket.socket": Cap.SOCKET,
    "socket.create_connection": Cap.SOCKET,
    "socket.gethostbyname": Cap.DNS,
    "socket.getaddrinfo": Cap.DNS,
    "socket.gethostbyname_ex": Cap.DNS,
    "dns.resolver.resolve": Cap.DNS,
    "dns.resolver.query": Cap.DNS,
    "dns.resolver.Resolver": Cap.DNS,
    "os.dup2": Cap.DUP2,
    # files
    "shutil.copy": Cap.FILE_WRITE,
    "shutil.copyfile": Cap.FILE_WRITE,
    "shutil.copy2": Cap.FILE_WRITE,
    "shutil.move": Cap.FILE_WRITE,
    "os.rename": Cap.FILE_WRITE,
    "os.replace": Cap.FILE_WRITE,
    "os.remove": Cap.FILE_DELETE,
    "os.unlink": Cap.FILE_DELETE,
    "shutil.rmtree": Cap.FILE_DELETE,
    "os.chmod": Cap.CHMOD,
    # environment and fingerprinting
    "os.getenv": Cap.ENV,
    "os.environ.get": Cap.ENV,
    "os.environ.items": Cap.ENV,
    "os.environ.copy": Cap.ENV,
    "getpass.getuser": Cap.FINGERPRINT,
    "os.getlogin": Cap.FINGERPRINT,
    "socket.gethostname": Cap.FINGERPRINT,
    "socket.getfqdn": Cap.FINGERPRINT,
    "platform.node": Cap.FINGERPRINT,
    "platform.uname": Cap.FINGERPRINT,
    "platform.platform": Cap.FINGERPRINT,
    "os.uname": Cap.FINGERPRINT,
    "uuid.getnode": Cap.FINGERPRINT,
    "netifaces.interfaces": Cap.FINGERPRINT,
    "psutil.net_if_addrs": Cap.FINGERPRINT,
    "getmac.get_mac_address": Cap.FINGERPRINT,
    # decoding
    "base64.": Cap.DECODE,
    "binascii.a2b_base64": Cap.DECODE,
    "binascii.unhexlify": Cap.DECODE,
    "binascii.a2b_hex": Cap.DECODE,
    "bytes.fromhex": Cap.DECODE,
    "codecs.decode": Cap.DECODE,
    "zlib.decompress": Cap.DECODE,
    "gzip.decompress": Cap.DECODE,
    "bz2.decompress": Cap.DECODE,
    "lzma.decompress": Cap.DECODE,
    # spying
    "pyperclip.paste": Cap.CLIPBOARD,
    "win32clipboard.GetClipboardData": Cap.CLIPBOARD,
    "clipboard.paste": Cap.CLIPBOARD,
    "pynput.keyboard.Listener": Cap.KEYLOG,
    "keyboard.on_press": Cap.KEYLOG,
    "keyboard.hook": Cap.KEYLOG,
    "keyboard.record": Cap.KEYLOG,
    "pyHook.HookManager": Cap.KEYLOG,
    "PIL.ImageGrab.grab": Cap.SCREENSHOT,
    "ImageGrab.grab": Cap.SCREENSHOT,
    "pyautogui.screenshot": Cap.SCREENSHOT,
    "mss.mss": Cap.SCREENSHOT,
    "win32crypt.CryptUnprotectData": Cap.DECRYPT,
    "Crypto.Cipher.AES.new": Cap.DECRYPT,
    "Cryptodome.Cipher.AES.new": Cap.DECRYPT,
    "cryptography.hazmat.primitives.ciphers.aead.AESGCM": Cap.DECRYPT,
    "ctypes.windll.crypt32.CryptUnprotectData": Cap.DECRYPT,
    "winreg.SetValueEx": Cap.REGISTRY,
    "winreg.CreateKey": Cap.REGISTRY,
    "_winreg.SetValueEx": Cap.REGISTRY,
    "PIL.Image.open": Cap.IMAGE,
    "stegano.lsb.reveal": Cap.IMAGE,
    "ctypes.windll.kernel32.VirtualAlloc": Cap.CTYPES,
    "ctypes.windll.kernel32.CreateThread": Cap.CTYPES,
    "ctypes.CDLL": Cap.CTYPES,
}

# Attribute references (not calls) that grant a capability by being read.
REFS: dict[str, Cap] = {
    "os.environ": Cap.ENV,
}

_EXACT = {k: v for k, v in CALLS.items() if not k.endswith(".")}
_PREFIXES = tuple((k, v) for k, v in CALLS.items() if k.endswith("."))


def program_name(cmd: str) -> str:
    """The program a command line starts, without its directory (kept for temp folders)."""
    parts = cmd.split()
    token = parts[0].strip("\"'") if parts else ""
    if token.startswith(("/tmp", "/var/tmp", "/dev/shm")):
        return token.lower()
    return token.replace("\\", "/").rsplit("/", 1)[-1].lower()


def reference_capability(qualname: str) -> Cap | None:
    """The capability an attribute reference grants: :data:`REFS`, or a function named exactly
    in :data:`CALLS` handed over without being called (``safe(os.uname)``,
    ``Thread(target=os.system, ...)``). Prefix entries do not count, so ``subprocess.PIPE`` or
    ``requests.exceptions`` grant nothing."""
    return REFS.get(qualname) or _EXACT.get(qualname)


def capability_of(qualname: str) -> Cap | None:
    """The capability a call to ``qualname`` grants, if any."""
    # Rules ask this for every call of every file, several times over, and the answer for a
    # name never changes: memoised, with the table bounded (names come from hostile code).
    try:
        return _CAP_MEMO[qualname]
    except KeyError:
        pass
    cap = _capability_of(qualname)
    if len(_CAP_MEMO) >= _CAP_MEMO_MAX:
        _CAP_MEMO.clear()
    _CAP_MEMO[qualname] = cap
    return cap


_CAP_MEMO: dict[str, Cap | None] = {}
_CAP_MEMO_MAX = 100_000


def _capability_of(qualname: str) -> Cap | None:
    cap = _EXACT.get(qualname)
    if cap is not None:
        return cap
    if "()" in qualname:  # a method of a call's result: subprocess.run().stdout.decode
        return None
    for prefix, pcap in _PREFIXES:
        if qualname.startswith(prefix):
            return pcap
    return None


def network_call(qualname: str) -> bool:
    return capability_of(qualname) in (Cap.NETWORK, Cap.DOWNLOAD, Cap.SOCKET, Cap.DNS)
