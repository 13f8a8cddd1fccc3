"""``contest-bot sandbox`` in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): the command as a user runs it, the page as a person uses it.

Screenshots of the key screens go to artifacts/screenshots/ (the README names it)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait

    SELENIUM = True
except ImportError:  # pragma: no cover - the dev extras install it
    SELENIUM = False

MISSING = (
    "browser tests need Selenium (pip install -e '.[dev]') and Debian's chromium and "
    "chromium-driver packages (apt-get install -y chromium chromium-driver; .ci/run does it)"
)
# CI installs the browser and sets this: there, a browser that is missing or does not
# start fails the run instead of skipping these tests.
REQUIRED = os.environ.get("CONTEST_REQUIRE_BROWSER") == "1"
AVAILABLE = SELENIUM and CHROMIUM and CHROMEDRIVER


def unavailable(reason: str) -> None:
    (pytest.fail if REQUIRED else pytest.skip)(reason)


pytestmark = pytest.mark.skipif(not AVAILABLE and not REQUIRED, reason=MISSING)

WAIT = 15.0  # seconds for the bot's answer to show on the page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``contest-bot sandbox --port N``, as a user starts it (a process of its own)."""
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while "Mở trang:" not in log.read_text(encoding="utf-8", errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the sandbox did not start:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # SIGTERM: the sandbox stops cleanly
        try:
            assert process.wait(timeout=20) == 0, log.read_text(encoding="utf-8")
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads: Path) -> Iterator[WebDriver]:
    if not AVAILABLE:
        unavailable(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--lang=vi-VN",
    ):
        options.add_argument(argument)
    # A phone's screen (390 × 844 CSS pixels), touch and all.
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}}
    )
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
        },
    )
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    try:
        browser = webdriver.Chrome(options=options, service=service)
    except WebDriverException as exc:
        unavailable(f"Chromium did not start: {exc.msg}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()


# ------------------------------------------------------------------ the page, as a person


class Page:
    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver = driver
        self.url = url

    def open(self, persona: int | None = None) -> None:
        self.driver.get("about:blank")  # a new page load, even if only the #vai= differs
        self.driver.get(self.url + (f"/#vai={persona}" if persona else "/"))
        self.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))

    def reload(self) -> None:
        self.driver.refresh()
        self.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))

    def until(self, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
        return WebDriverWait(
            self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    @property
    def persona(self) -> int:
        return int(self.driver.find_element(By.ID, "persona").get_attribute("value") or 0)

    def mark(self) -> int:
        """The last change the page has shown: wait for bot messages after it."""
        return int(self.driver.execute_script("return state.seq"))

    def bot_message(self, fragment: str, since: int, timeout: float = WAIT) -> WebElement:
        """A bot message sent or edited after ``since`` whose text has ``fragment``."""

        def find(d: WebDriver) -> WebElement | bool:
            for message in reversed(d.find_elements(By.CSS_SELECTOR, ".msg.bot")):
                if int(message.get_attribute("data-seq") or 0) <= since:
                    continue
                if fragment in message.text:
                    return message
            return False

        try:
            return self.until(find, timeout)  # type: ignore[no-any-return]
        except Exception:
            transcript = "\n---\n".join(
                m.text for m in self.driver.find_elements(By.CSS_SELECTOR, ".msg")[-6:]
            )
            raise AssertionError(
                f"no bot message with {fragment!r} after {since}; last messages:\n{transcript}"
            ) from None

    def say(self, text: str, expect: str) -> WebElement:
        since = self.mark()
        box = self.driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys(text)
        self.driver.find_element(By.ID, "send").click()
        return self.bot_message(expect, since)

    def press(self, label: str, expect: str) -> WebElement:
        """Press the newest inline button with this label (exact, else a prefix)."""
        since = self.mark()

        def click(d: WebDriver) -> bool:
            buttons = list(reversed(d.find_elements(By.CSS_SELECTOR, ".msg.bot .kb button")))
            for exact in (True, False):
                for button in buttons:
                    text = button.text
                    if (text == label if exact else text.startswith(label)) and (
                        button.is_enabled()
                    ):
                        button.click()
                        return True
            return False

        self.until(click)
        return self.bot_message(expect, since)

    def share_contact(self, expect: str) -> WebElement:
        since = self.mark()
        self.until(lambda d: d.find_element(By.CSS_SELECTOR, "#reply-kb button")).click()
        return self.bot_message(expect, since)

    def new_persona(self, name: str, role: str = "contestant", channel: str = "telegram") -> int:
        before = self.persona
        d = self.driver
        d.find_element(By.ID, "new-persona-open").click()
        d.find_element(By.ID, "new-name").send_keys(name)
        d.find_element(By.CSS_SELECTOR, f"#new-role option[value='{role}']").click()
        d.find_element(By.CSS_SELECTOR, f"#new-channel option[value='{channel}']").click()
        d.find_element(By.ID, "new-persona-create").click()
        try:
            self.until(lambda _: self.persona != before)
        except Exception:
            self.shot("debug-new-persona")
            toast = d.find_element(By.ID, "toast").text
            raise AssertionError(f"no new persona; toast: {toast!r}") from None
        return self.persona

    def move_clock(self, label: str) -> None:
        d = self.driver
        if not d.find_element(By.ID, "clock").get_attribute("open"):
            d.find_element(By.CSS_SELECTOR, "#clock summary").click()
        before = d.find_element(By.ID, "clock-now").text
        button = next(
            b for b in d.find_elements(By.CSS_SELECTOR, "#clock button") if b.text == label
        )
        button.click()
        self.until(lambda _: d.find_element(By.ID, "clock-now").text != before)

    def register(self, name: str, ward_search: str = "kim lien") -> None:
        """Register as a citizen, through the page: buttons, typing, the contact button."""
        self.say("/dangky", "Tôi đồng ý")
        self.press("✅ Tôi đồng ý", "họ và tên")
        self.say(name, "ngày sinh")
        self.say("01/01/1995", "Chia sẻ số điện thoại")
        self.share_contact("tư cách nào")
        self.press("👤 Công dân", "phường")
        self.say(ward_search, "Kết quả tìm kiếm")
        self.press("phường Kim Liên", "kiểm tra lại")
        self.press("✅ Xác nhận đăng ký", "đăng ký dự thi thành công")

    def choose(self, label: str, expect: str) -> WebElement:
        """On Zalo: type the number of the newest numbered choice with this label."""
        for message in reversed(self.driver.find_elements(By.CSS_SELECTOR, ".msg.bot")):
            for line in message.text.splitlines():
                found = re.match(r"^(\d+)\. (.*)$", line)
                if found and label in found.group(2):
                    return self.say(found.group(1), expect)
        raise AssertionError(f"no numbered choice {label!r} on the page")

    def register_on_zalo(self, name: str) -> None:
        """Register as a citizen on Zalo: every step typed, the phone number too."""
        phone = self.driver.find_element(By.ID, "zalo-phone").text
        assert re.fullmatch(r"0\d{9}", phone), phone
        self.say("/dangky", "Tôi đồng ý")
        self.choose("Tôi đồng ý", "họ và tên")
        self.say(name, "ngày sinh")
        self.say("01/01/1995", "số điện thoại di động")
        self.say(phone, "tư cách nào")
        self.choose("Công dân", "phường")
        self.say("kim lien", "Kết quả tìm kiếm")
        self.choose("Kim Liên", "kiểm tra lại")
        self.choose("Xác nhận đăng ký", "đăng ký dự thi thành công")

    def start_exam(self) -> WebElement:
        self.say("/thi", "Bắt đầu")
        return self.press("▶️ Bắt đầu làm bài", "Câu 1/20")

    def answer(self, position: int, label: str = "A") -> WebElement:
        """Answer question ``position`` (1-based) of the card; the card after it."""
        expect = f"Câu {position + 1}/20" if position < 20 else "hoàn thành bài thi"
        return self.press(label, expect)

    def card_text(self) -> str:
        cards = [
            m
            for m in self.driver.find_elements(By.CSS_SELECTOR, ".msg.bot")
            if re.search(r"Câu \d+/20", m.text)
        ]
        assert cards, "no exam card on the page"
        return str(cards[-1].text)


@pytest.fixture
def page(driver: WebDriver, sandbox_url: str) -> Page:
    return Page(driver, sandbox_url)


# ------------------------------------------------------------------ the tests


def test_a_persona_registers_takes_an_attempt_to_the_end_and_sees_the_result(page: Page):
    page.open()
    persona = page.new_persona("Phạm Thị Mai")
    page.register("Phạm Thị Mai")
    page.shot("01-dang-ky-xong")
    card = page.start_exam()
    assert "Còn lại" in card.text
    # The card is one message, edited in place, with A/B/C under it.
    buttons = [b.text for b in card.find_elements(By.CSS_SELECTOR, ".kb button")]
    assert buttons == ["A", "B", "C"]
    assert "đã sửa" in card.text
    page.shot("02-bai-thi")
    for position in range(1, 20):
        page.answer(position, "ABC"[position % 3])
    done = page.answer(20)
    assert re.search(r"\b\d{1,2}/20\b", done.text), done.text
    assert "còn 1 lần thi" in done.text
    page.shot("03-ket-qua")
    # Bold as Telegram shows it, not as tags.
    assert "<b>" not in page.driver.find_element(By.ID, "chat").text
    assert page.driver.find_elements(By.CSS_SELECTOR, ".msg.bot .text b")
    assert page.persona == persona


def test_a_second_persona_hits_the_deadline_through_the_clock_control(page: Page):
    page.open()
    page.new_persona("Đỗ Văn Bình")
    page.register("Đỗ Văn Bình")
    page.start_exam()
    page.answer(1)
    page.answer(2)
    since = page.mark()
    for _ in range(3):  # 15 minutes of the 20: the 5-minute warning
        page.move_clock("+5 phút")
    warning = page.bot_message("còn khoảng", since)
    assert "5 phút" in warning.text
    page.shot("04-canh-bao-5-phut")
    since = page.mark()
    page.move_clock("+5 phút")  # past the deadline: the sandbox's timers fire at once
    result = page.bot_message("Đã hết thời gian làm bài", since)
    assert "2/20" in result.text or "/20" in result.text
    page.shot("05-het-gio")
    # The card no longer takes answers.
    assert not any(
        b.text in ("A", "B", "C")
        for b in page.driver.find_elements(By.CSS_SELECTOR, ".msg.bot .kb button")
    )


def test_an_organiser_uploads_a_bank_sees_thongke_and_downloads_an_export(
    page: Page, tmp_path: Path, downloads: Path
):
    page.open(700_001)  # the organiser of the settings
    bank = tmp_path / "cau-hoi-bo-sung.csv"
    bank.write_text(
        "topic,question,a,b,c,answer\n"
        + "".join(
            f"Diễn tập,Câu hỏi diễn tập số {i} về dịch vụ công trực tuyến?,Có,Không,Tùy,a\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    since = page.mark()
    page.driver.find_element(By.ID, "file").send_keys(str(bank))
    plan = page.bot_message("HỢP LỆ", since)
    assert "3 câu hỏi" in plan.text
    page.press("➕ Thêm/cập nhật", "Xác nhận thêm/cập nhật")
    done = page.press("✅ Xác nhận", "Đã nhập ngân hàng câu hỏi")
    assert "3 câu mới" in done.text
    page.shot("06-tai-ngan-hang")

    stats = page.say("/thongke", "THỐNG KÊ THAM GIA VÒNG 1")
    assert "Kim Liên" in stats.text or "đơn vị" in stats.text
    page.shot("07-thongke")

    since = page.mark()
    page.say("/xuat", "Đang tạo tệp")
    link = page.until(
        lambda d: next(
            (a for a in d.find_elements(By.CSS_SELECTOR, ".msg.bot a.doc") if ".xlsx" in a.text),
            False,
        ),
        timeout=90,
    )
    page.shot("08-xuat-du-lieu")
    name = link.get_attribute("download")
    assert name and name.startswith("du-lieu-cuoc-thi-") and name.endswith(".xlsx")
    link.click()
    saved = downloads / name
    page.until(lambda _: saved.exists() and saved.stat().st_size > 0, timeout=30)
    from openpyxl import load_workbook

    book = load_workbook(saved, read_only=True)
    try:
        assert book.sheetnames
    finally:
        book.close()
    assert since < page.mark()


def test_the_page_survives_a_reload_mid_attempt(page: Page):
    page.open()
    persona = page.new_persona("Vũ Thị Cúc")
    page.register("Vũ Thị Cúc")
    page.start_exam()
    for position in (1, 2, 3):
        page.answer(position)
    before = page.card_text()
    assert "Câu 4/20" in before
    page.shot("09-truoc-khi-tai-lai")
    page.reload()
    assert page.persona == persona  # the persona is in the address
    after = page.card_text()
    assert "Câu 4/20" in after
    assert after.split("Còn lại")[0] == before.split("Còn lại")[0]
    page.shot("10-sau-khi-tai-lai")
    page.answer(4)  # and the attempt goes on from there
    assert "Câu 5/20" in page.card_text()


RENDER = """
const text = "😀 đậm nghiêng gạch chân gạch ngang mã\\nkhối\\ntrích dẫn ẩn liên kết xấu "
  + "<script>alert(1)</script> & <b>x</b>";
const at = (word) => text.indexOf(word);
const entities = [
  { type: "bold", offset: at("đậm"), length: 3 },
  { type: "italic", offset: at("nghiêng"), length: 7 },
  { type: "bold", offset: at("nghiêng"), length: 3 },
  { type: "underline", offset: at("gạch chân"), length: 9 },
  { type: "strikethrough", offset: at("gạch ngang"), length: 10 },
  { type: "code", offset: at("mã"), length: 2 },
  { type: "pre", offset: at("khối"), length: 4 },
  { type: "blockquote", offset: at("trích dẫn"), length: 9 },
  { type: "spoiler", offset: at("ẩn"), length: 2 },
  { type: "text_link", offset: at("liên kết"), length: 8, url: "https://dichvucong.gov.vn/" },
  { type: "text_link", offset: at("xấu"), length: 3, url: "javascript:alert(1)" },
];
return renderText(text, entities).innerHTML;
"""


def test_the_bots_formatting_is_shown_as_telegram_shows_it_and_the_rest_escaped(page: Page):
    page.open()
    html = page.driver.execute_script(RENDER)
    # UTF-16 offsets: the emoji counts two, as in Telegram's entities.
    assert html.startswith("😀 <b>đậm</b> <i><b>ngh</b>iêng</i> <u>gạch chân</u> ")
    assert "<s>gạch ngang</s> <code>mã</code>\n<pre>khối</pre>\n" in html
    assert "<blockquote>trích dẫn</blockquote>" in html
    assert '<span class="spoiler" title="Nhấn để xem">ẩn</span>' in html
    assert (
        '<a href="https://dichvucong.gov.vn/" target="_blank" rel="noopener noreferrer">'
        "liên kết</a>" in html
    )
    assert "<span>xấu</span>" in html  # a javascript: link is no link
    assert html.endswith("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt;")

    # Through the bot: a name with tags is shown as typed, inside the bot's bold.
    page.new_persona("<i>Hà</i> & <script>x</script>")
    greeting = page.say("/start", "Xin chào")
    assert "Xin chào <i>Hà</i> & <script>x</script>!" in greeting.text
    bold = greeting.find_elements(By.CSS_SELECTOR, ".text b")
    assert bold and bold[0].text == "<i>Hà</i> & <script>x</script>"
    assert not greeting.find_elements(By.CSS_SELECTOR, ".text i, .text script")
    page.shot("00-loi-chao")


def test_a_zalo_persona_registers_by_typing_and_takes_an_attempt_to_the_end(page: Page):
    """A Zalo chat on the page: plain text, no buttons, no edits; the person types the
    phone number, the numbers of the choices and the letters of the answers."""
    page.open()
    page.new_persona("Trịnh Văn Zalo", channel="zalo")
    assert page.driver.find_element(By.TAG_NAME, "body").get_attribute("data-channel") == "zalo"
    assert not page.driver.find_element(By.ID, "menu-open").is_displayed()
    page.register_on_zalo("Trịnh Văn Zalo")
    page.shot("11-zalo-dang-ky-xong")
    intro = page.say("thi", "gõ 1 để bắt đầu")
    assert "Bắt đầu làm bài" in intro.text
    card = page.choose("Bắt đầu làm bài", "Câu 1/20")
    assert "⏱ Còn lại" in card.text and "\nA. " in card.text
    page.shot("12-zalo-cau-hoi")
    for position in range(1, 21):
        expect = f"Câu {position + 1}/20" if position < 20 else "hoàn thành bài thi"
        message = page.say("abc"[position % 3] if position % 2 else "ABC"[position % 3], expect)
    assert re.search(r"\b\d{1,2}/20\b", message.text), message.text
    assert "còn 1 lần thi" in message.text
    page.shot("13-zalo-ket-qua")
    # One message per question, never edited, and never a button on the page.
    cards = [
        m.text
        for m in page.driver.find_elements(By.CSS_SELECTOR, ".msg.bot")
        if re.search(r"Câu \d+/20", m.text)
    ]
    assert len(cards) == 20
    assert not page.driver.find_elements(By.CSS_SELECTOR, ".msg .kb button, .edited")
    assert not page.driver.find_elements(By.CSS_SELECTOR, ".msg.bot .text b")  # plain text
