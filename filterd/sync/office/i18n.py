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
    "Reports": "Báo cáo định kỳ",
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
    'Report':
        'Báo cáo',
    'Year (1 Dec – 30 Nov)':
        'Năm (1/12 – 30/11)',
    'Quarter':
        'Quý',
    'Month':
        'Tháng',
    'Year':
        'Năm',
    'Quarter or month':
        'Quý hoặc tháng',
    'All districts':
        'Tất cả quận/huyện',
    'Document number':
        'Số văn bản',
    'Download PDF (to sign)':
        'Tải PDF (để ký)',
    'Download XLSX':
        'Tải XLSX',
    'Print preview':
        'Xem bản in',
    'Issued by':
        'Cơ quan ban hành',
    'Office settings':
        'Thiết lập cơ quan',
    'Schools reporting':
        'Số trường có báo cáo',
    'Previous period':
        'Lượt chặn kỳ trước',
    "What the reports say about the office (Decree 30/2020/NĐ-CP): the agency, the document "
    "symbol, the place and the signer.":
        "Thông tin cơ quan in trên báo cáo (Nghị định 30/2020/NĐ-CP): cơ quan ban hành, ký hiệu "
        "văn bản, địa danh và người ký.",
    'Saved.':
        'Đã lưu.',
    'Save':
        'Lưu',
    'setting:parent_agency':
        'Cơ quan chủ quản',
    'setting:agency':
        'Cơ quan ban hành',
    'setting:symbol':
        'Ký hiệu văn bản (ví dụ BC-SGDĐT)',
    'setting:place':
        'Địa danh',
    'setting:signer_title':
        'Chức vụ người ký',
    'setting:signer_name':
        'Họ tên người ký',
    'setting:recipients':
        'Kính gửi',
    'Blocked per day':
        'Lượt chặn theo ngày',
    'Blocked per category, against the previous period':
        'Lượt chặn theo nhóm nội dung, so với kỳ trước (vạch mảnh)',
    'previous period':
        'kỳ trước',
    'No such school.':
        'Không có trường này.',
    'Reporting days':
        'Số ngày đã báo cáo',
    'received':
        'nhận lúc',
    'Health':
        'Tình trạng thiết bị',
    'Uptime (hours)':
        'Thời gian chạy liên tục (giờ)',
    'No report in this period.':
        'Không có báo cáo trong kỳ.',
    'Feed versions':
        'Phiên bản dữ liệu cấp từ văn phòng',
    'Feed':
        'Dữ liệu',
    'Version':
        'Phiên bản',
    'Fetched':
        'Nhận lúc',
    'No feed fetched yet.':
        'Chưa nhận dữ liệu nào.',
    'Device coverage':
        'Số thiết bị theo nhóm tuổi (ngày gần nhất)',
    'fewer than k':
        'ít hơn k thiết bị',
    'Signing keys':
        'Khóa ký của trường',
    'Key':
        'Khóa',
    'State':
        'Trạng thái',
    'revoked':
        'đã thu hồi',
    'in use':
        'đang dùng',
    'Not enrolled yet: give the school its one-time code.':
        'Chưa đăng ký khóa: hãy trao cho trường mã đăng ký dùng một lần.',
    'feed:protected':
        'Danh sách bảo vệ',
    'feed:deny':
        'Bổ sung danh sách chặn',
    'feed:allow':
        'Bổ sung danh sách cho phép',
    'feed:education':
        'Trang giáo dục',
    'feed:notices':
        'Thông báo',
}

# keys that are not English text themselves
EN: dict[str, str] = {
    'feed:protected': 'Protected list',
    'feed:deny': 'Deny additions',
    'feed:allow': 'Allow additions',
    'feed:education': 'Education sites',
    'feed:notices': 'Notices',
    'setting:parent_agency': 'Governing body',
    'setting:agency': 'Issuing agency',
    'setting:symbol': 'Document symbol (e.g. BC-SGDĐT)',
    'setting:place': 'Place',
    'setting:signer_title': "Signer's title",
    'setting:signer_name': "Signer's name",
    'setting:recipients': 'Addressed to',
}


def translate(text: str, lang: str) -> str:
    if lang == "vi":
        return VI.get(text, text)
    return EN.get(text, text)
