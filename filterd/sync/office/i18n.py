"""Two languages for the office pages: Vietnamese (default) and English.

A small catalog keyed by the English text; a missing Vietnamese entry shows the
English text rather than failing, and tests/sync/office/test_i18n.py keeps the
catalog complete for every string the templates and pages use.
"""

from __future__ import annotations

LANGUAGES = ("vi", "en")
DEFAULT = "vi"

VI: dict[str, str] = {
    "Education office": "Phòng/Sở Giáo dục và Đào tạo",
    "filterd office": "filterd — văn phòng",
    "Sign in": "Đăng nhập",
    "Sign out": "Đăng xuất",
    "User name": "Tên đăng nhập",
    "Password": "Mật khẩu",
    "Wrong user name or password.": "Sai tên đăng nhập hoặc mật khẩu.",
    "Too many failed sign-ins; wait 15 minutes.":
        "Đăng nhập sai quá nhiều lần; vui lòng đợi 15 phút.",
    "Today": "Hôm nay",
    "Blocks": "Lượt chặn",
    "Top categories": "Nhóm nội dung hàng đầu",
    "Bypass": "Vượt lọc",
    "List freshness": "Độ mới danh sách",
    "Yearly report": "Báo cáo năm",
    "Schools": "Trường học",
    "Reports for": "Báo cáo ngày",
    "Reported": "Đã gửi báo cáo",
    "Missing": "Chưa gửi báo cáo",
    "Missing since": "Thiếu từ ngày",
    "School": "Trường",
    "School id": "Mã trường",
    "Name": "Tên",
    "District": "Quận/huyện",
    "Province": "Tỉnh/thành phố",
    "Received at": "Nhận lúc",
    "Day": "Ngày",
    "Age group": "Nhóm tuổi",
    "Category": "Nhóm nội dung",
    "Blocked": "Bị chặn",
    "Queries": "Lượt truy vấn",
    "Blocks per category and age group by district":
        "Lượt chặn theo nhóm nội dung và nhóm tuổi, theo quận/huyện",
    "Blocks per day and category": "Lượt chặn theo ngày và nhóm nội dung",
    "Blocked names seen by at least k devices": "Tên miền bị chặn (ít nhất k thiết bị)",
    "Schools reporting it": "Số trường ghi nhận",
    "Hits": "Lượt",
    "Devices": "Thiết bị",
    "Bypass attempts per day and district": "Lượt cố vượt lọc theo ngày và quận/huyện",
    "Attempts": "Lượt thử",
    "Last report": "Báo cáo gần nhất",
    "List version": "Phiên bản danh sách",
    "List updated": "Cập nhật danh sách",
    "List age (days)": "Tuổi danh sách (ngày)",
    "Appliance version": "Phiên bản thiết bị",
    "Events dropped": "Sự kiện bị mất",
    "Upstream failures": "Lỗi máy chủ DNS gốc",
    "From": "Từ ngày",
    "To": "Đến ngày",
    "Show": "Xem",
    "Download CSV": "Tải CSV",
    "Totals per school": "Tổng theo trường",
    "Totals per district": "Tổng theo quận/huyện",
    "Days reported": "Số ngày đã báo cáo",
    "Bypass attempts": "Lượt cố vượt lọc",
    "Number of schools": "Số trường",
    "Yearly report due 15 December": "Báo cáo năm, hạn nộp 15/12",
    "Period": "Kỳ báo cáo",
    "Enrol a school": "Đăng ký trường",
    "Enrol": "Đăng ký",
    "Enrolled": "Ngày đăng ký",
    "One-time enrolment code for": "Mã đăng ký dùng một lần của",
    "Give this code to the school's IT staff; on the appliance they run: filterd enrol --code "
    "CODE. It is shown only once and works once, for 14 days.":
        "Hãy trao mã này cho cán bộ tin học của trường; trên thiết bị, chạy lệnh: filterd enrol "
        "--code MÃ. Mã chỉ hiện một lần, dùng được một lần, trong 14 ngày.",
    "never": "chưa bao giờ",
    "No data.": "Không có dữ liệu.",
    "Only administrators can do this.": "Chỉ quản trị viên được làm việc này.",
    "The form expired; please try again.": "Biểu mẫu đã hết hạn; vui lòng thử lại.",
    "All fields are required.": "Cần điền đầy đủ các trường.",
    "The office database is unavailable; please try again in a minute.":
        "Cơ sở dữ liệu của văn phòng tạm thời không truy cập được; vui lòng thử lại sau một phút.",
}


def translate(text: str, lang: str) -> str:
    if lang == "vi":
        return VI.get(text, text)
    return text
